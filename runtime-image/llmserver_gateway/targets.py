"""What a request is sent to: the route, the body as sent, and the prefix PrefixHash hashes.

The body goes out as the client sent it, except where the served name must change: a provider's
model name (proxy mode), or the fallback's name when a fallback answers for a cold model. Only
then is it re-encoded.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from llmserver_gateway import balancing, table


@dataclasses.dataclass(slots=True)
class Target:
    """One forwarding decision; the parsed body itself is not kept (memory)."""

    route: table.Route
    body: bytes
    prefix: str | None = None
    served_by: str | None = None  # set when a fallback answers: the x-llmserver-served-by header


def build(route: table.Route, payload: dict[str, Any], body: bytes, prefix_chars: int,
          served_by: str | None = None) -> Target:
    """The target for `route`; `payload` is the parsed `body` (its `model` may be rewritten)."""
    if route.upstream is not None:
        payload["model"] = route.upstream.model
        return Target(route, encode(payload), served_by=served_by)
    if served_by is not None:
        payload["model"] = route.model
        body = encode(payload)
    prefix = None
    if route.policy is table.Policy.PREFIX_HASH:
        prefix = balancing.prompt_prefix(payload, prefix_chars)
    return Target(route, body, prefix, served_by)


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON, non-ASCII kept as UTF-8 (as clients send it)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
