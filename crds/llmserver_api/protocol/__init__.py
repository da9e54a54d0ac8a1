"""OpenAI wire models and the one error shape, shared by the runtime server and the gateway.

Pure pydantic: no FastAPI, aiohttp, backend or ML imports, so the gateway can use it without
pulling an engine in."""
