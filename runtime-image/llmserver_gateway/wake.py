"""Waking a cold model: a fire-and-forget POST to its static config `wakeUrl` (local mode).

The local supervisor loads the model when it gets the POST; the request that found the model cold
is held meanwhile. At most one POST per model per `interval` seconds: a burst of requests to a
cold model must not turn into a burst of wake calls. Failures are logged, never seen by clients.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

log = logging.getLogger("llmserver.gateway.wake")

_TIMEOUT = aiohttp.ClientTimeout(total=10)


class Waker:
    """Sends wake POSTs over `session` (set when the app starts) and keeps them until done."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.session: aiohttp.ClientSession | None = None
        self._last: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self, model: str, url: str) -> None:
        """POSTs to `url` in the background unless `model` was woken less than `interval` ago."""
        if self.session is None:
            return
        now = asyncio.get_running_loop().time()
        last = self._last.get(model)
        if last is not None and now - last < self.interval:
            return
        self._last[model] = now
        task = asyncio.create_task(self._post(self.session, model, url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, session: aiohttp.ClientSession, model: str, url: str) -> None:
        try:
            async with session.post(url, data=b"", timeout=_TIMEOUT, allow_redirects=False) as reply:
                await reply.read()
                if reply.status >= 400:
                    log.warning("waking model %s: %s answered %d", model, url, reply.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("waking model %s: POST %s failed (%s)", model, url, type(exc).__name__)

    async def close(self) -> None:
        """Cancels wake calls still running (the app is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
