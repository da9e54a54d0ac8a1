"""What the gateway should do with each model right now, decided from the hosted servers' state (pure).

- Ready self-hosted server: its runtime.
- Unloading (re-routed, runtime still up until the gateway re-read the config): the wake-up proxy
  if it may restart, else no endpoint.
- Unloaded by idle time or the LRU cap, or still loading: the wake-up proxy of the control
  endpoint, so a request (re)starts the model and waits instead of failing.
- Failed, or unloaded by `unload-model`: no endpoint, so the gateway answers 503.
- Proxy server: its provider while Ready (the key by env var name), else no endpoint.
"""

from __future__ import annotations

from llmserver_cli.hosting import hosted
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
    if unit.phase == "Ready" and unit.base_url:
        endpoint = gateway_config.Endpoint(unit.base_url, True)
    elif unit.phase == "Unloading" and not unit.wakeable:
        return gateway_config.Route(model=spec.model, policy=policy)
    elif control_url and (unit.wakeable or unit.loading):
        endpoint = gateway_config.Endpoint(f"{control_url}/wake/{unit.key}", True)
    else:
        return gateway_config.Route(model=spec.model, policy=policy)
    return gateway_config.Route(model=spec.model, policy=policy, endpoints=(endpoint,))


def routes(all_units: list[hosted.Hosted], control_url: str | None) -> list[gateway_config.Route]:
    """Routes of every server."""
    return [route(unit, control_url) for unit in all_units]
