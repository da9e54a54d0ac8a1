"""The one hosting lifecycle shared by local mode (`llmserver up`) and the Mac agent
(`llmserver agent`): download, start a runtime, wait for /ready, idle unload, evict the least
recently used by count or memory, wake on request. Each side adds only how it publishes state."""
