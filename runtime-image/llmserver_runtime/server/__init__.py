"""The OpenAI-compatible HTTP server around one backend (`llmserver-runtime serve`)."""
