"""Gateway API keys: who may call, which models, how often.

Keys come from the static config or a Kubernetes Secret; absent keys mean an open gateway (local
mode). The limit is a token bucket per key holding one minute's worth of requests, refilled
continuously, so a key may burst up to its per-minute budget and then gets 429 with Retry-After.
Keys are compared as dictionary keys and never logged or echoed in errors.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable

from llmserver_api.protocol import errors


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    """One gateway API key. `models` None means every model."""

    key: str = dataclasses.field(repr=False)
    models: frozenset[str] | None = None
    requests_per_minute: int | None = None

    def allows(self, model: str) -> bool:
        """Whether this key may use `model`."""
        return self.models is None or model in self.models


@dataclasses.dataclass(slots=True)
class _Bucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float
    stamp: float


class KeyStore:
    """The current keys and their rate buckets. `enabled` is false when no keys are configured."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys: dict[str, ApiKey] | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._clock = clock
        self.required = False  # Kubernetes mode with a keys Secret: refuse everything until it loads

    @property
    def enabled(self) -> bool:
        """True when requests must carry a key."""
        return self._keys is not None or self.required

    def replace(self, keys: Iterable[ApiKey] | None) -> None:
        """Installs a new key set; buckets of keys that stay keep their state (no free reset)."""
        if keys is None:
            self._keys = None
            self._buckets.clear()
            return
        new = {k.key: k for k in keys}
        self._keys = new
        self._buckets = {k: b for k, b in self._buckets.items() if k in new}

    def authenticate(self, authorization: str | None) -> ApiKey | None:
        """The caller's key from an `Authorization: Bearer` header; None when auth is off.

        Raises APIError 401 when a key is required and missing or unknown (the key is not echoed).
        """
        if not self.enabled:
            return None
        token = _bearer(authorization)
        if token is None:
            raise errors.authentication_failed("Missing API key: send it as `Authorization: Bearer <key>`.")
        found = (self._keys or {}).get(token)
        if found is None:
            raise errors.authentication_failed("Incorrect API key provided.")
        return found

    def admit(self, key: ApiKey, model: str) -> None:
        """Returns when `key` may send a request for `model` now; raises APIError 403 or 429."""
        if not key.allows(model):
            raise errors.permission_denied(f"This API key may not use the model `{model}`.")
        if key.requests_per_minute is None:
            return
        now = self._clock()
        bucket = self._buckets.get(key.key)
        rate = key.requests_per_minute / 60.0
        if bucket is None or bucket.capacity != key.requests_per_minute:
            bucket = self._buckets[key.key] = _Bucket(rate, float(key.requests_per_minute),
                                                      float(key.requests_per_minute), now)
        bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.stamp) * bucket.rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait = max(1, math.ceil((1.0 - bucket.tokens) / bucket.rate))
        raise errors.rate_limited(
            f"Rate limit reached: {key.requests_per_minute} requests per minute for this API key; "
            f"retry after {wait} s.", retry_after_s=wait)


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
