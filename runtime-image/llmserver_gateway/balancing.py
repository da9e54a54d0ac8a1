"""Choosing a replica: least outstanding requests, or prefix-hash (consistent hashing, bounded load).

Least outstanding suits independent requests. Prefix-hash sends requests that share a prompt prefix
(a system prompt, a long document) to the same replica so its KV/prefix cache is reused; the load
bound (Mirrokni et al., "Consistent Hashing with Bounded Loads") moves work on to the next replica
on the ring when the preferred one already carries more than `load_factor` times the average.
Hashes are stable across processes (blake2b) so several gateway replicas agree on the placement.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Collection, Sequence
from typing import Any

from llmserver_gateway import table

VIRTUAL_NODES = 64
_MAX_RINGS = 256


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


class Ring:
    """A consistent-hash ring with `VIRTUAL_NODES` points per endpoint URL."""

    def __init__(self, urls: Sequence[str], virtual_nodes: int = VIRTUAL_NODES) -> None:
        points = sorted((stable_hash(f"{url}#{i}"), url) for url in urls for i in range(virtual_nodes))
        self._hashes = [h for h, _ in points]
        self._urls = [u for _, u in points]
        self.size = len(set(urls))

    def walk(self, key_hash: int) -> list[str]:
        """Distinct endpoint URLs in ring order, starting at the key's position."""
        if not self._urls:
            return []
        start = bisect.bisect_left(self._hashes, key_hash) % len(self._urls)
        seen: list[str] = []
        n = len(self._urls)
        for i in range(n):
            url = self._urls[(start + i) % n]
            if url not in seen:
                seen.append(url)
                if len(seen) == self.size:
                    break
        return seen


class Balancer:
    """Tracks requests in flight per endpoint URL and picks the endpoint for the next request."""

    def __init__(self, load_factor: float = 1.25) -> None:
        if load_factor < 1.0:
            raise ValueError("load_factor must be at least 1.0")
        self.load_factor = load_factor
        self.in_flight: dict[str, int] = {}
        self._rings: dict[tuple[str, ...], Ring] = {}
        self._turn = 0

    def acquire(self, url: str) -> None:
        """Counts one more request in flight on `url`."""
        self.in_flight[url] = self.in_flight.get(url, 0) + 1

    def release(self, url: str) -> None:
        """Counts one request on `url` as finished."""
        left = self.in_flight.get(url, 0) - 1
        if left > 0:
            self.in_flight[url] = left
        else:
            self.in_flight.pop(url, None)

    def pick(
        self, route: table.Route, prefix: str | None = None, exclude: Collection[str] = ()
    ) -> table.Endpoint | None:
        """The endpoint for the next request of `route`, skipping URLs in `exclude` (already tried)."""
        candidates = route.ready_endpoints
        if exclude:
            candidates = tuple(e for e in candidates if e.url not in exclude)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        if route.policy is table.Policy.PREFIX_HASH and prefix is not None:
            return self._pick_prefix(candidates, prefix)
        return self._pick_least(candidates)

    def _pick_least(self, candidates: Sequence[table.Endpoint]) -> table.Endpoint:
        # Rotating the starting point spreads ties (e.g. an idle pool) instead of always taking the first.
        self._turn = (self._turn + 1) % 1_000_000_007
        n = len(candidates)
        start = self._turn % n
        loads = self.in_flight
        best = candidates[start]
        best_load = loads.get(best.url, 0)
        for i in range(1, n):
            endpoint = candidates[(start + i) % n]
            load = loads.get(endpoint.url, 0)
            if load < best_load:
                best, best_load = endpoint, load
        return best

    def _pick_prefix(self, candidates: Sequence[table.Endpoint], prefix: str) -> table.Endpoint:
        by_url = {e.url: e for e in candidates}
        ring = self._ring(tuple(sorted(by_url)))
        loads = self.in_flight
        total = sum(loads.get(url, 0) for url in by_url)
        capacity = math.ceil(self.load_factor * (total + 1) / len(by_url))
        for url in ring.walk(stable_hash(prefix)):
            if loads.get(url, 0) + 1 <= capacity:
                return by_url[url]
        return self._pick_least(candidates)  # unreachable by the pigeonhole principle; kept for safety

    def _ring(self, urls: tuple[str, ...]) -> Ring:
        ring = self._rings.get(urls)
        if ring is None:
            if len(self._rings) >= _MAX_RINGS:
                self._rings.clear()
            ring = self._rings[urls] = Ring(urls)
        return ring


def prompt_prefix(payload: dict[str, Any], chars: int) -> str | None:
    """The first `chars` characters of the prompt: messages (role and text), prompt, or input.

    Only the start of the prompt matters for a prefix cache, so building the key stops as soon as
    enough characters are collected; a request with no text at all hashes to None (least load).
    """
    parts: list[str] = []
    size = 0
    messages = payload.get("messages", _responses_messages(payload))
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            for text in _message_texts(message):
                parts.append(text)
                size += len(text)
                if size >= chars:
                    return "".join(parts)[:chars]
        return "".join(parts)[:chars] if parts else None
    for field in ("prompt", "input", "query"):
        value = payload.get(field)
        if isinstance(value, list) and value and isinstance(value[0], (str, list)):
            value = value[0]  # a batch: the first prompt stands for it
        if isinstance(value, str):
            return value[:chars]
        if isinstance(value, list):  # token ids
            return ",".join(str(t) for t in value[:chars])
    return None


def _responses_messages(payload: dict[str, Any]) -> list[Any] | None:
    """A Responses API request's prompt as messages: instructions first, then the input items
    (or the input text); None for other requests, whose `input` is read as text below."""
    instructions, items = payload.get("instructions"), payload.get("input")
    if isinstance(items, str) and isinstance(instructions, str):
        items = [{"role": "user", "content": items}]
    if not (isinstance(items, list) and items and isinstance(items[0], dict)):
        return None
    head = [{"role": "system", "content": instructions}] if isinstance(instructions, str) else []
    return head + items


def _message_texts(message: dict[str, Any]) -> list[str]:
    role = message.get("role")
    texts = [f"<{role}>"] if isinstance(role, str) else []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts
