"""The gateway: one OpenAI endpoint in front of every served model.

Routes by the request's `model` to ready runtime endpoints (least outstanding requests or prefix-hash
balancing) or to an external provider (proxy mode). Built on aiohttp, server and client, because it
measured ~20x cheaper per request than Starlette+httpx here. Never imports a backend or ML library.
"""
