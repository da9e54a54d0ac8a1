"""The routing table: served model name -> ready endpoints, or -> an external upstream.

Sources (the static config file, Kubernetes discovery) build a complete new set of routes and swap
it in at once, so a request never sees a half-updated table. Routes are immutable; the mutable
per-endpoint load lives in `balancing.Balancer`, keyed by URL, so it survives table swaps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

import llmserver_api

Policy = llmserver_api.RoutingPolicy


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One runtime replica. `url` is its base URL without `/v1`."""

    url: str
    ready: bool = True
    api_key: str | None = dataclasses.field(default=None, repr=False)  # sent as Bearer (Mac runtimes)


@dataclasses.dataclass(frozen=True, slots=True)
class Upstream:
    """An external OpenAI-compatible provider (proxy mode). `url` includes the `/v1` part.

    `guarded`: a tenant wrote it (a Proxy LLMServer), so the Proxy host policy applies to every
    request (`guard`); upstreams of the static config are the gateway operator's own and trusted."""

    url: str
    model: str
    api_key: str | None = dataclasses.field(default=None, repr=False)  # never logged, never in errors
    guarded: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Elastic:
    """What the gateway does for a model with no ready endpoint (`spec.autoscaling`, issue 18).

    `hold_seconds` 0: answer 503 at once (no hold). `fallback`: another served model that answers
    meanwhile. `wake_url` (static config only): POSTed when a request finds the model cold."""

    hold_seconds: float = 0.0
    max_held_requests: int = 0
    fallback: str | None = None
    wake_url: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Where requests for one served model go."""

    model: str
    policy: Policy = Policy.LEAST_OUTSTANDING
    endpoints: tuple[Endpoint, ...] = ()
    upstream: Upstream | None = None
    source: str = ""  # where the route came from (e.g. "namespace/name"), for messages only
    server: str | None = None  # the LLMServer ("namespace/name") that owns its demand; None: static config
    elastic: Elastic | None = None  # None: no hold, no fallback (503 while cold)
    adapter_of: str | None = None  # `<base>:<adapter>` routes: the base model; only replicas listing it
    ready_endpoints: tuple[Endpoint, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Computed once per table build so the hot path does not filter on every request.
        object.__setattr__(self, "ready_endpoints", tuple(e for e in self.endpoints if e.ready))

    @property
    def available(self) -> bool:
        """True when a request for this model can be forwarded now."""
        return self.upstream is not None or bool(self.ready_endpoints)

    @property
    def demand_key(self) -> str:
        """The key of this route's demand in `/internal/load`: its LLMServer, or `static/<model>`."""
        return self.server if self.server is not None else f"static/{self.model}"


class RoutingTable:
    """The current routes, swapped whole. `loaded` turns true on the first successful load."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._given: dict[str, Route] = {}  # what the source gave, before `transform`
        self.loaded = False
        self.version = 0
        self._listeners: list[Callable[[], None]] = []
        self._transform: Callable[[dict[str, Route]], dict[str, Route]] | None = None

    def set_transform(self, transform: Callable[[dict[str, Route]], dict[str, Route]]) -> None:
        """Derives the installed routes from the source's (adapter routes: only replicas holding the
        adapter); applied on every `replace` and `refresh`."""
        self._transform = transform
        if self.loaded:
            self.refresh()

    def refresh(self) -> None:
        """Installs the source's last routes again through `transform` (what it knows changed)."""
        if self.loaded:
            self._install(self._given)

    def given(self) -> list[Route]:
        """The source's routes as it gave them (before `transform`)."""
        return list(self._given.values())

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Calls `listener` after every swap (held requests wake on it instead of polling)."""
        self._listeners.append(listener)

    def replace(self, routes: Mapping[str, Route] | Iterable[Route]) -> None:
        """Installs a new complete set of routes."""
        if isinstance(routes, Mapping):
            new = dict(routes)
        else:
            new = {route.model: route for route in routes}
        self._given = new
        self._install(new)

    def _install(self, given: dict[str, Route]) -> None:
        self._routes = self._transform(dict(given)) if self._transform is not None else given
        self.loaded = True
        self.version += 1
        for listener in self._listeners:
            listener()

    def get(self, model: str) -> Route | None:
        """The route for a served model name, or None when no LLMServer serves it."""
        return self._routes.get(model)

    def routes(self) -> list[Route]:
        """All routes, sorted by model name (for /v1/models)."""
        return [self._routes[name] for name in sorted(self._routes)]
