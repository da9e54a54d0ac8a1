"""Local mode: `llmserver up` reconciles LLMServer manifests into processes on this machine
(downloader, one runtime per self-hosted server, one gateway), without Kubernetes."""
