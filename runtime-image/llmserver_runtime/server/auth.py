"""Optional bearer-key check on /v1/* (Mac runtimes are reached over the network without a
cluster boundary). The key comes from env LLMSERVER_API_KEY and is never logged or echoed."""

from __future__ import annotations

import hmac

from starlette import requests

from llmserver_api.protocol import errors
from llmserver_runtime.server import state


async def require_api_key(request: requests.Request) -> None:
    """FastAPI dependency: 401 unless `Authorization: Bearer <key>` matches, when a key is set."""
    key = state.of(request).settings.api_key
    if key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.get_secret_value().encode()):
        raise errors.authentication_failed()
