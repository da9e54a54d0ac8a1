"""Cancel a request's work when its client goes away.

Uvicorn does not cancel a handler whose client disconnected; without this a dropped non-streaming
request would keep the engine busy until it finished. (Streaming responses are cancelled by
Starlette itself when the client leaves.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette import requests


class ClientDisconnected(Exception):
    """The client closed the connection before the response was sent."""


@contextlib.asynccontextmanager
async def cancel_on_disconnect(request: requests.Request) -> AsyncIterator[None]:
    """Run the block; if `http.disconnect` arrives first, cancel it and raise ClientDisconnected.

    Only for use after the request body was read (FastAPI reads it before the handler runs)."""
    task = asyncio.current_task()
    assert task is not None
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if disconnected and task.uncancel() == 0:
            raise ClientDisconnected() from None
        raise
    finally:
        watcher.cancel()
