"""From observed Kubernetes objects to routes and API keys: pure, so it is tested without a cluster.

Inputs are the raw JSON objects the API returns (LLMServers, EndpointSlices, Secrets); discovery
keeps them current and calls `build` after every change. Problems (an invalid LLMServer, a missing
Secret, two servers claiming one model name, a refused Proxy) come back as messages for the log;
they never raise and never carry a secret's value.

What tenants write is not trusted (house rule 13, `Trust`): an EndpointSlice's key annotation is
honoured only on the operator's Mac slices naming that Mac's key Secret in the agents' namespace;
a Proxy's URL must pass the host policy and its Secret must be opted in with a label.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic
import yaml

import llmserver_api
from llmserver_api import proxy_policy
from llmserver_gateway import adapter_routes, auth, config, table

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
API_KEYS_SECRET_KEY = "apiKeys"
# Set by the operator on a Mac's EndpointSlice (llmserver_operator.apple.publishing): NS/NAME of the
# Secret whose `api-key` the Mac runtime requires as Bearer.
ENDPOINT_KEY_ANNOTATION = "serving.llmserver.dev/endpoint-api-key-secret"
ENDPOINT_KEY_SECRET_KEY = "api-key"
# What the operator's Mac slices carry (llmserver_operator.apple.publishing, docs/contracts.md).
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
OPERATOR = "llmserver-operator"
APPLE_NODE_LABEL = "serving.llmserver.dev/apple-node"

Obj = Mapping[str, Any]
Ref = tuple[str, str]  # (namespace, name)


@dataclasses.dataclass(frozen=True)
class Trust:
    """What the gateway accepts from tenant-written objects (from GatewaySettings)."""

    agents_namespace: str = "llmserver-system"
    proxy_hosts: proxy_policy.HostPolicy = dataclasses.field(default_factory=proxy_policy.HostPolicy)


def mac_key_secret(node: str) -> str:
    """The Secret holding a Mac's runtime key (llmserver_operator.apple.publishing.key_secret_name)."""
    return f"applenode-{node}-key"


@dataclasses.dataclass
class View:
    """What one build produced."""

    routes: list[table.Route]
    problems: list[str]
    secrets_needed: set[Ref]


def ref(obj: Obj) -> Ref:
    """(namespace, name) of an object."""
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def secret_value(secret: Obj | None, key: str) -> str | None:
    """A Secret's value as text: `data` is base64 (as the API returns it), `stringData` is plain."""
    if secret is None:
        return None
    raw = (secret.get("data") or {}).get(key)
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    plain = (secret.get("stringData") or {}).get(key)
    return plain if isinstance(plain, str) else None


def build(
    servers: Iterable[Obj], slices: Iterable[Obj], secrets: Mapping[Ref, Obj], trust: Trust | None = None
) -> View:
    """Routes for every LLMServer; the oldest server wins when two claim the same model name
    (by creationTimestamp, then namespace/name; the operator marks the others ModelNameConflict)."""
    trust = trust or Trust()
    problems: list[str] = []
    needed: set[Ref] = set()
    by_service: dict[Ref, list[Obj]] = {}
    for item in slices:
        namespace, _ = ref(item)
        service = ((item.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service:
            by_service.setdefault((namespace, service), []).append(item)
    parsed: list[tuple[str, Ref, llmserver_api.LLMServer]] = []
    for obj in servers:
        where = "/".join(ref(obj))
        try:
            server = llmserver_api.LLMServer.model_validate(dict(obj))
        except pydantic.ValidationError as exc:
            problems.append(f"LLMServer {where} skipped, its spec is invalid: {config.describe_errors(exc)}")
            continue
        created = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
        parsed.append((created, ref(obj), server))
    parsed.sort(key=lambda item: (item[0], item[1]))
    routes: dict[str, table.Route] = {}
    with_adapters: list[tuple[table.Route, list[str]]] = []
    for _, key, server in parsed:
        name = server.spec.model
        where = "/".join(key)
        if name in routes:
            problems.append(f"LLMServer {where} also serves model {name!r}; {routes[name].source} keeps it")
            continue
        if server.spec.mode is llmserver_api.Mode.PROXY:
            routes[name] = _proxy_route(server, key, secrets, needed, problems, trust)
        else:
            # Kept with no endpoint at all (0 replicas, still loading): a request can be held for it.
            endpoints = endpoints_of(by_service.get(key, []), secrets, needed, problems, trust)
            routes[name] = table.Route(
                model=name, policy=server.spec.routing.policy, endpoints=endpoints, source=where,
                server=where, elastic=elastic_of(server),
            )
            if server.spec.adapters:
                with_adapters.append((routes[name], [adapter.name for adapter in server.spec.adapters]))
    for base, adapters in with_adapters:  # after every model's own name, which wins a clash
        adapter_routes.add(routes, base, adapters, problems)
    return View(routes=list(routes.values()), problems=problems, secrets_needed=needed)


def elastic_of(server: llmserver_api.LLMServer) -> table.Elastic | None:
    """The gateway's part of `spec.autoscaling` (hold bounds, fallback); None when it is not set."""
    scaling = server.spec.autoscaling
    if scaling is None:
        return None
    return table.Elastic(
        hold_seconds=float(scaling.hold_seconds), max_held_requests=scaling.max_held_requests,
        fallback=scaling.fallback,
    )


def _proxy_route(
    server: llmserver_api.LLMServer,
    key: Ref,
    secrets: Mapping[Ref, Obj],
    needed: set[Ref],
    problems: list[str],
    trust: Trust,
) -> table.Route:
    """The provider route of a Proxy server: unavailable (no upstream) while its URL is refused by
    the host policy or its key Secret is missing or not opted in; no Secret is read for a refused URL."""
    where = "/".join(key)
    spec = server.spec
    proxy = spec.proxy
    unavailable = table.Route(model=spec.model, policy=spec.routing.policy, source=where, server=where)
    if proxy is None:  # the schema refuses this; kept so a hand-edited object cannot crash discovery
        problems.append(f"LLMServer {where} is in Proxy mode without spec.proxy")
        return unavailable
    refused = trust.proxy_hosts.check_url(proxy.url)
    if refused is not None:
        problems.append(f"LLMServer {where}: spec.proxy.url is refused by the Proxy host policy ({refused}); "
                        "the model is unavailable")
        return unavailable
    api_key = None
    if proxy.api_key_secret_ref is not None:
        secret_ref = (key[0], proxy.api_key_secret_ref.name)
        needed.add(secret_ref)
        secret = secrets.get(secret_ref)
        if secret is not None and not proxy_policy.secret_opted_in((secret.get("metadata") or {}).get("labels")):
            problems.append(
                f"LLMServer {where}: Secret {proxy.api_key_secret_ref.name!r} is not labelled "
                f"{proxy_policy.PROXY_KEY_LABEL}=true, so no Proxy may send it; the model is unavailable"
            )
            return unavailable
        api_key = secret_value(secret, proxy.api_key_secret_ref.key)
        if api_key is None:
            # Without its key the provider would answer 401 to every request: report it unready instead.
            problems.append(
                f"LLMServer {where}: Secret {proxy.api_key_secret_ref.name!r} key "
                f"{proxy.api_key_secret_ref.key!r} not found; the model is unavailable until it exists"
            )
            return unavailable
    upstream = table.Upstream(
        url=proxy.url.rstrip("/"), model=proxy.upstream_model or spec.model, api_key=api_key, guarded=True
    )
    return table.Route(model=spec.model, policy=spec.routing.policy, upstream=upstream, source=where, server=where)


def endpoints_of(
    slices: Iterable[Obj],
    secrets: Mapping[Ref, Obj] | None = None,
    needed: set[Ref] | None = None,
    problems: list[str] | None = None,
    trust: Trust | None = None,
) -> tuple[table.Endpoint, ...]:
    """Endpoints of a Service's EndpointSlices, deduplicated, sorted, with readiness and API key.

    An operator-managed Mac slice annotated with `serving.llmserver.dev/endpoint-api-key-secret`
    naming its Mac's key Secret in the agents' namespace gets that Secret's `api-key` value as its
    Bearer key; while that Secret is missing its endpoints count as not ready (the runtime would
    refuse every request). On any other slice the annotation is ignored: no key, no Secret read.
    """
    found: dict[str, tuple[bool, str | None]] = {}
    for item in slices:
        port = _port(item.get("ports") or [])
        if port is None:
            continue
        api_key, key_ok = _slice_key(item, secrets or {}, needed, problems, trust or Trust())
        ipv6 = item.get("addressType") == "IPv6"
        for endpoint in item.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            # Kubernetes: a missing `ready` means ready; terminating endpoints take no new requests.
            ready = key_ok and conditions.get("ready") is not False and conditions.get("terminating") is not True
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ipv6 or ":" in address else address
                url = f"http://{host}:{port}"
                seen_ready, seen_key = found.get(url, (False, None))
                found[url] = (seen_ready or ready, seen_key or api_key)
    return tuple(table.Endpoint(url=url, ready=r, api_key=k) for url, (r, k) in sorted(found.items()))


def _slice_key(
    item: Obj, secrets: Mapping[Ref, Obj], needed: set[Ref] | None, problems: list[str] | None, trust: Trust
) -> tuple[str | None, bool]:
    """(api key, usable) of a slice; usable is False when its annotated Secret cannot be read."""
    meta = item.get("metadata") or {}
    annotation = (meta.get("annotations") or {}).get(ENDPOINT_KEY_ANNOTATION)
    if not annotation:
        return None, True
    secret_ref = trusted_key_secret(item, annotation, trust)
    if secret_ref is None:
        if problems is not None:
            problems.append(f"EndpointSlice {'/'.join(ref(item))}: annotation {ENDPOINT_KEY_ANNOTATION} ignored "
                            "(only the operator's Mac slices naming their Mac's key Secret in the agents' "
                            f"namespace {trust.agents_namespace!r} get a key)")
        return None, True
    if needed is not None:
        needed.add(secret_ref)
    value = secret_value(secrets.get(secret_ref), ENDPOINT_KEY_SECRET_KEY)
    if value is None and problems is not None:
        problems.append(f"EndpointSlice {'/'.join(ref(item))}: Secret {'/'.join(secret_ref)} key "
                        f"{ENDPOINT_KEY_SECRET_KEY!r} not found; its endpoints are not used until it exists")
    return value, value is not None


def trusted_key_secret(item: Obj, annotation: str, trust: Trust) -> Ref | None:
    """The key Secret a slice may use, or None: the slice must carry the operator's labels (Mac
    slices: docs/contracts.md) and name `applenode-<its node>-key` in the agents' namespace."""
    labels = (item.get("metadata") or {}).get("labels") or {}
    node = labels.get(APPLE_NODE_LABEL)
    if labels.get(MANAGED_BY_LABEL) != OPERATOR or labels.get(SLICE_MANAGED_BY_LABEL) != OPERATOR or not node:
        return None
    expected = (trust.agents_namespace, mac_key_secret(node))
    return expected if annotation == "/".join(expected) else None


def _port(ports: list[Obj]) -> int | None:
    chosen = next((p for p in ports if p.get("name") == "http"), ports[0] if ports else None)
    value = chosen.get("port") if chosen else None
    return value if isinstance(value, int) else None


def api_keys_from_secret(secret: Obj | None, where: str) -> tuple[list[auth.ApiKey] | None, str | None]:
    """The gateway API keys in a Secret's `apiKeys` YAML; (None, problem) when missing or invalid."""
    text = secret_value(secret, API_KEYS_SECRET_KEY)
    if text is None:
        return None, f"Secret {where} has no `{API_KEYS_SECRET_KEY}` key; every request is refused (401)"
    try:
        entries = yaml.safe_load(text) or []
        if isinstance(entries, dict):
            entries = entries.get("apiKeys", [])
        parsed = pydantic.TypeAdapter(list[config.ApiKeyConfig]).validate_python(entries)
        return config.api_keys(parsed, f"{where}:{API_KEYS_SECRET_KEY}", {}), None
    except yaml.YAMLError as exc:
        return None, f"Secret {where} `{API_KEYS_SECRET_KEY}` is not valid YAML ({config.yaml_position(exc)})"
    except config.ConfigError as exc:
        return None, f"Secret {where} `{API_KEYS_SECRET_KEY}` is invalid: {exc}"
    except pydantic.ValidationError as exc:
        return None, f"Secret {where} `{API_KEYS_SECRET_KEY}` is invalid: {config.describe_errors(exc)}"
