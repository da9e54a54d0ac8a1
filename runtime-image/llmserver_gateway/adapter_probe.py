"""Learning which adapters each replica holds, from the replica's own `GET /v1/models`.

The operator loads adapters on live engines after a replica is ready, and restart engines come up
with theirs, so the gateway asks each replica (short timeout) when it first becomes ready or the
table changes, and again every `interval` seconds. What it learned feeds the routing table's
transform (`adapter_routes.restrict`); a change re-installs the table, which also wakes requests
held for an adapter. While a request is held for an adapter (`waiting`), every replica is asked
again every `HURRY_SECONDS`: the operator loads adapters on a live engine just after it is ready.
A replica that does not answer keeps what was last learned of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import aiohttp

from llmserver_gateway import adapter_routes, table

log = logging.getLogger("llmserver.gateway.adapters")

HURRY_SECONDS = 0.5


class AdapterProbe:
    """What each replica URL serves (model ids of its /v1/models), kept current in the background."""

    def __init__(self, routes: table.RoutingTable, interval: float = 5.0, timeout: float = 2.0,
                 waiting: Callable[[], bool] = lambda: False) -> None:
        self.routes = routes
        self.waiting = waiting
        self.interval = interval
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.held: dict[str, frozenset[str]] = {}
        self._asked: set[str] = set()  # URLs asked since they (re)appeared ready, answered or not
        self._changed = asyncio.Event()
        routes.subscribe(self._changed.set)
        routes.set_transform(lambda given: adapter_routes.restrict(given, self.held))

    def hurry(self) -> None:
        """A request is about to be held for an adapter: look again now (then every HURRY_SECONDS)."""
        self._changed.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Probes new replicas at once after a table change and all of them every `interval`
        (every HURRY_SECONDS while `waiting()`)."""
        loop = asyncio.get_running_loop()
        next_round = last_round = loop.time()
        while True:
            self._changed.clear()
            targets = adapter_routes.probe_targets(self.routes.given())
            now = loop.time()
            if now >= next_round or (self.waiting() and now >= last_round + HURRY_SECONDS):
                due = targets
                last_round, next_round = now, now + self.interval
            else:
                due = {url: key for url, key in targets.items() if url not in self._asked}
            if await self._probe(session, targets, due):
                self.routes.refresh()
            wake_at = min(next_round, last_round + HURRY_SECONDS) if self.waiting() else next_round
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, wake_at - loop.time()))
            except TimeoutError:
                pass

    async def _probe(self, session: aiohttp.ClientSession, targets: Mapping[str, str | None],
                     due: Mapping[str, str | None]) -> bool:
        """Asks every `due` replica; forgets replicas no longer ready. True when `held` changed."""
        gone = [url for url in self.held if url not in targets]
        for url in gone:
            del self.held[url]
        self._asked &= set(targets)
        self._asked |= set(due)
        urls = list(due)
        answers = await asyncio.gather(*(self._models(session, url, due[url]) for url in urls))
        changed = bool(gone)
        for url, ids in zip(urls, answers, strict=True):
            if ids is not None and self.held.get(url) != ids:
                self.held[url] = ids
                changed = True
        return changed

    async def _models(self, session: aiohttp.ClientSession, url: str, api_key: str | None) -> frozenset[str] | None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            async with session.get(f"{url}/v1/models", headers=headers, timeout=self.timeout,
                                   allow_redirects=False) as reply:
                if reply.status != 200:
                    log.warning("adapters of %s unknown: /v1/models answered %d", url, reply.status)
                    return None
                listing = await reply.json(content_type=None)
            return frozenset(str(m["id"]) for m in listing.get("data", []) if isinstance(m, dict) and "id" in m)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, AttributeError) as exc:
            log.warning("adapters of %s unknown: /v1/models failed (%s)", url, type(exc).__name__)
            return None
