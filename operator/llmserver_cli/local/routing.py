"""What the gateway should do with each model right now, decided from the hosted servers' state (pure).

- Ready self-hosted server: its runtime.
- Unloading (re-routed, runtime still up until the gateway re-read the config): the wake-up proxy
  if it may restart, else no endpoint.
- Unloaded by idle time or the LRU cap, or still loading: the wake-up proxy of the control
  endpoint, so a request (re)starts the model and waits instead of failing.
- Failed, or unloaded by `unload-model`: no endpoint, so the gateway answers 503.
- Proxy server: its provider while Ready (the key by env var name), else no endpoint.

A server with spec.autoscaling is routed for the gateway to hold its requests instead (and send
them to `fallback` meanwhile): its runtime while Ready, else no endpoint, with the hold bounds and
a `wakeUrl` (the control endpoint's `/wakeup/{name}`) the gateway POSTs to start the load. A failed
model gets holdSeconds 0 (its fallback, else a 503 at once); one unloaded by `unload-model` (or
left at spec.replicas 0 with minReplicas >= 1) is off, as in a cluster: no endpoint, no hold, no
fallback, until `load-model`.
"""

from __future__ import annotations

import dataclasses

from llmserver_cli.hosting import elastic, hosted
from llmserver_cli.local import gateway_config, proxy


def route(unit: hosted.Hosted, control_url: str | None) -> gateway_config.Route:
    """The gateway route of one server."""
    spec = unit.server.spec
    policy = spec.routing.policy.value
    if not unit.self_hosted:
        if unit.phase != "Ready" or spec.proxy is None:
            return gateway_config.Route(model=spec.model, policy=policy)
        ref = spec.proxy.api_key_secret_ref
        upstream = gateway_config.Upstream(
            url=spec.proxy.url,
            model=spec.proxy.upstream_model or spec.model,
            api_key_env=proxy.api_key_env(ref.key) if ref else None,
        )
        return gateway_config.Route(model=spec.model, policy=policy, upstream=upstream)
    if elastic.autoscaling(unit.server) is not None:
        return _held(unit, control_url, policy)
    if unit.phase == "Ready" and unit.base_url:
        endpoint = gateway_config.Endpoint(unit.base_url, True)
    elif unit.phase == "Unloading" and not unit.wakeable:
        return gateway_config.Route(model=spec.model, policy=policy)
    elif control_url and (unit.wakeable or unit.loading):
        endpoint = gateway_config.Endpoint(f"{control_url}/wake/{unit.key}", True)
    else:
        return gateway_config.Route(model=spec.model, policy=policy)
    return gateway_config.Route(model=spec.model, policy=policy, endpoints=(endpoint,))


def comes_back(unit: hosted.Hosted) -> bool:
    """True while a held request can expect `unit` to become ready: serving, loading, or
    unloaded by idle time or eviction (a wake restarts it)."""
    return unit.phase in ("Pending", "Downloading", "Starting", "Ready") or unit.loading or unit.wakeable


def _held(unit: hosted.Hosted, control_url: str | None, policy: str) -> gateway_config.Route:
    block = elastic.autoscaling(unit.server)
    assert block is not None
    if unit.phase in ("Unloaded", "Unloading") and not unit.wakeable:
        return gateway_config.Route(unit.model, policy)
    ready = unit.phase == "Ready" and unit.base_url is not None
    endpoints = (gateway_config.Endpoint(unit.base_url, True),) if ready and unit.base_url else ()
    hold = gateway_config.Hold(block.hold_seconds if comes_back(unit) else 0, block.max_held_requests, block.fallback)
    wake_url = f"{control_url}/wakeup/{unit.key}" if control_url else None
    return gateway_config.Route(unit.model, policy, endpoints, hold=hold, wake_url=wake_url)


def routes(all_units: list[hosted.Hosted], control_url: str | None) -> list[gateway_config.Route]:
    """Routes of every server; a self-hosted one's adapters ride on its route (the gateway sends
    `<model>:<adapter>` to the endpoints whose /v1/models lists it)."""
    found = []
    for unit in all_units:
        built = route(unit, control_url)
        if unit.self_hosted and unit.server.spec.adapters:
            built = dataclasses.replace(built, adapters=tuple(a.name for a in unit.server.spec.adapters))
        found.append(built)
    return found
