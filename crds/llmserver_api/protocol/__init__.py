"""OpenAI wire models, the one error shape (`errors`) and the wire form of streams (`stream`),
shared by the runtime server and the gateway.

Pure pydantic: no FastAPI, aiohttp, backend or ML imports, so the gateway can use it without
pulling an engine in."""
