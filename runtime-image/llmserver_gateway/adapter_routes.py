"""Routes for LoRA adapters (issue 21): `<model>:<adapter>` goes only to replicas that hold it.

Every adapter of a server gets its own route with the base model's endpoints; which replica holds
which adapter is learned from each replica's own `/v1/models` (`adapter_probe`), and `restrict`
(the routing table's transform) marks the others not ready for that route. A replica not probed
yet holds nothing, so a request never reaches a replica that would answer 404. Pure functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from llmserver_gateway import table


def name(model: str, adapter: str) -> str:
    """The served name of an adapter (docs/contracts.md): `<model>:<adapter>`."""
    return f"{model}:{adapter}"


def route(base: table.Route, adapter: str) -> table.Route:
    """The route of one adapter of `base`: its endpoints and server; held like the base while cold,
    but never answered by the base's fallback (another model would ignore the adapter)."""
    elastic = dataclasses.replace(base.elastic, fallback=None) if base.elastic is not None else None
    return dataclasses.replace(base, model=name(base.model, adapter), elastic=elastic, adapter_of=base.model)


def add(routes: dict[str, table.Route], base: table.Route, adapters: Iterable[str], problems: list[str]) -> None:
    """Adds the adapter routes of `base` to `routes`; a name another route already has is skipped."""
    for adapter in adapters:
        served = name(base.model, adapter)
        if served in routes:
            problems.append(f"{base.source}: adapter {adapter!r} is not routed, model name {served!r} is "
                            f"already served by {routes[served].source}")
            continue
        routes[served] = route(base, adapter)


def probe_targets(routes: Iterable[table.Route]) -> dict[str, str | None]:
    """URL -> API key of every ready endpoint whose adapters matter (those of adapter routes)."""
    return {e.url: e.api_key for r in routes if r.adapter_of is not None for e in r.endpoints if e.ready}


def restrict(routes: dict[str, table.Route], held: Mapping[str, frozenset[str]]) -> dict[str, table.Route]:
    """`routes` with each adapter route's endpoints ready only where `held[url]` lists the adapter."""
    for served, found in routes.items():
        if found.adapter_of is None:
            continue
        endpoints = tuple(
            e if not e.ready or served in held.get(e.url, frozenset()) else dataclasses.replace(e, ready=False)
            for e in found.endpoints)
        if endpoints != found.endpoints:
            routes[served] = dataclasses.replace(found, endpoints=endpoints)
    return routes
