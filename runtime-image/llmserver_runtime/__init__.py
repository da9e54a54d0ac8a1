"""What the runtime image runs: the OpenAI server around one backend, the gateway, the downloader."""
