"""The static config file (docs/contracts.md, "Gateway static config") and its reload on change.

Local mode and tests write this YAML instead of running a cluster. A broken edit never takes the
gateway down: the previous table stays in force and the error, naming the field, goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import typing
from collections.abc import Mapping

import pydantic
import yaml

import llmserver_api
from llmserver_api import common, elastic, sources
from llmserver_gateway import adapter_routes, auth, table

log = logging.getLogger("llmserver.gateway.config")

_URL = r"^https?://[^\s/]+(/\S*)?$"


class ConfigError(ValueError):
    """The config file is missing, not YAML, or breaks the schema; the message names the field."""


class EndpointConfig(common.ApiModel):
    """One runtime replica."""

    url: str = pydantic.Field(..., pattern=_URL, description="Runtime base URL, without /v1.")
    ready: bool = pydantic.Field(True, description="Whether the replica takes requests.")
    api_key: str | None = pydantic.Field(None, min_length=1, description="Sent as Bearer (Mac runtimes).")
    api_key_env: str | None = pydantic.Field(None, min_length=1, description="Env var holding apiKey.")


class UpstreamConfig(common.ApiModel):
    """An external OpenAI-compatible provider (proxy mode)."""

    url: str = pydantic.Field(..., pattern=_URL, description="Provider base URL including /v1.")
    model: str | None = pydantic.Field(None, min_length=1, description="Model name at the provider.")
    api_key_env: str | None = pydantic.Field(None, min_length=1, description="Env var holding the provider key.")
    api_key: str | None = pydantic.Field(None, min_length=1, description="The provider key itself (tests only).")


class AutoscalingConfig(common.ApiModel):
    """The gateway's part of an LLMServer's `spec.autoscaling` (same names and defaults as the CRD).

    The autoscaler's own fields are accepted and ignored, so a writer may copy the whole block."""

    hold_seconds: int = pydantic.Field(
        300, ge=0, le=3600, description="Seconds a request waits for a ready endpoint; then 503. 0: no hold.")
    max_held_requests: int = pydantic.Field(
        100, ge=0, le=100000, description="Requests held at once for this model; beyond it 429.")
    fallback: str | None = pydantic.Field(
        None, min_length=1, max_length=253, pattern=elastic.MODEL_NAME,
        description="Another model of this config that answers while this one has no ready endpoint.")
    min_replicas: int | None = pydantic.Field(None, ge=0, description="Ignored here (the supervisor's).")
    max_replicas: int | None = pydantic.Field(None, ge=0, description="Ignored here (the supervisor's).")
    target_in_flight: int | None = pydantic.Field(None, ge=1, description="Ignored here (the supervisor's).")
    window_seconds: int | None = pydantic.Field(None, ge=1, description="Ignored here (the supervisor's).")
    scale_down_delay_seconds: int | None = pydantic.Field(None, ge=0, description="Ignored here (the supervisor's).")


class ModelConfig(common.ApiModel):
    """One served model name and where its requests go."""

    name: str = pydantic.Field(..., min_length=1, description="The model name clients send.")
    policy: common.LaxEnum[llmserver_api.RoutingPolicy] = pydantic.Field(
        llmserver_api.RoutingPolicy.LEAST_OUTSTANDING, description="LeastOutstanding or PrefixHash."
    )
    endpoints: list[EndpointConfig] = pydantic.Field(default_factory=list, description="Runtime replicas.")
    upstream: UpstreamConfig | None = pydantic.Field(None, description="Proxy mode provider.")
    autoscaling: AutoscalingConfig | None = pydantic.Field(
        None, description="Hold requests / answer from a fallback while no endpoint is ready.")
    adapters: list[typing.Annotated[str, pydantic.Field(max_length=63, pattern=sources.ADAPTER_NAME)]] = (
        pydantic.Field(default_factory=list, description="LoRA adapters its runtimes may hold, each served as "
                       "`<name>:<adapter>` by the endpoints whose /v1/models lists it."))
    wake_url: str | None = pydantic.Field(
        None, pattern=_URL, description="POSTed (empty body, at most once a second) when a request finds "
        "this model without a ready endpoint, so its supervisor loads it.")

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> ModelConfig:
        if self.upstream is not None and self.endpoints:
            raise ValueError("give either endpoints or upstream, not both")
        if self.autoscaling is not None and self.autoscaling.fallback == self.name:
            raise ValueError("autoscaling.fallback must name another model")
        return self


class ApiKeyConfig(common.ApiModel):
    """A gateway API key, the models it may use and its request rate."""

    key: str | None = pydantic.Field(None, min_length=1, description="The key clients send as Bearer.")
    key_env: str | None = pydantic.Field(None, min_length=1, description="Env var holding the key.")
    models: list[str] = pydantic.Field(default_factory=lambda: ["*"], description='Allowed models; "*" is all.')
    requests_per_minute: int | None = pydantic.Field(None, ge=1, description="Rate limit; unset is unlimited.")

    @pydantic.model_validator(mode="after")
    def _one_key(self) -> ApiKeyConfig:
        if (self.key is None) == (self.key_env is None):
            raise ValueError("give exactly one of key and keyEnv")
        return self


class StaticConfig(common.ApiModel):
    """The whole file."""

    models: list[ModelConfig] = pydantic.Field(default_factory=list, description="Served models.")
    api_keys: list[ApiKeyConfig] | None = pydantic.Field(None, description="Absent means no auth.")


def parse(text: str, environ: Mapping[str, str]) -> tuple[list[table.Route], list[auth.ApiKey] | None]:
    """Routes and API keys from the YAML text; raises ConfigError naming the offending field."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML ({yaml_position(exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping with `models` (and optionally `apiKeys`)")
    try:
        config = StaticConfig.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
    routes: list[table.Route] = []
    seen: set[str] = set()
    for i, model in enumerate(config.models):
        if model.name in seen:
            raise ConfigError(f"models[{i}].name: model {model.name!r} is listed twice")
        seen.add(model.name)
        routes.append(_route(model, f"models[{i}]", environ))
    by_name = {route.model: route for route in routes}
    for i, model in enumerate(config.models):
        if model.adapters and model.upstream is not None:
            raise ConfigError(f"models[{i}].adapters: a provider (upstream) model has no adapters here")
        for j, adapter in enumerate(model.adapters):
            if adapter_routes.name(model.name, adapter) in seen:
                raise ConfigError(f"models[{i}].adapters[{j}]: model {adapter_routes.name(model.name, adapter)!r} "
                                  "is also listed")
        adapter_routes.add(by_name, by_name[model.name], model.adapters, [])
    routes = list(by_name.values())
    keys = None
    if config.api_keys is not None:
        keys = api_keys(config.api_keys, "apiKeys", environ)
    return routes, keys


def api_keys(entries: list[ApiKeyConfig], where: str, environ: Mapping[str, str]) -> list[auth.ApiKey]:
    """Gateway API keys from validated entries (also used for the Kubernetes Secret's YAML)."""
    keys: list[auth.ApiKey] = []
    for i, entry in enumerate(entries):
        value = entry.key or _env(environ, entry.key_env, f"{where}[{i}].keyEnv")
        models = None if "*" in entry.models else frozenset(entry.models)
        keys.append(auth.ApiKey(key=value, models=models, requests_per_minute=entry.requests_per_minute))
    return keys


def yaml_position(exc: yaml.YAMLError) -> str:
    """Where a YAML error is, without PyYAML's quote of the line (which may hold a key)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def describe_errors(exc: pydantic.ValidationError) -> str:
    """pydantic's errors as `field.path: message`, joined, so the user sees which field is wrong."""
    out = []
    for error in exc.errors():
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append(f"{path or '<root>'}: {error['msg']}")
    return "; ".join(out)


def _elastic(model: ModelConfig) -> table.Elastic | None:
    scaling = model.autoscaling
    if scaling is None:
        if model.wake_url is None:
            return None
        return table.Elastic(wake_url=model.wake_url)  # woken, but not held: 503 while it loads
    return table.Elastic(hold_seconds=float(scaling.hold_seconds), max_held_requests=scaling.max_held_requests,
                         fallback=scaling.fallback, wake_url=model.wake_url)


def _route(model: ModelConfig, where: str, environ: Mapping[str, str]) -> table.Route:
    if model.upstream is not None:
        up = model.upstream
        key = up.api_key
        if up.api_key_env is not None:
            key = _env(environ, up.api_key_env, f"{where}.upstream.apiKeyEnv")
        upstream = table.Upstream(url=up.url.rstrip("/"), model=up.model or model.name, api_key=key)
        return table.Route(model=model.name, policy=model.policy, upstream=upstream, source="config",
                           elastic=_elastic(model))
    endpoints = []
    for j, ep in enumerate(model.endpoints):
        key = ep.api_key
        if ep.api_key_env is not None:
            key = _env(environ, ep.api_key_env, f"{where}.endpoints[{j}].apiKeyEnv")
        endpoints.append(table.Endpoint(url=ep.url.rstrip("/"), ready=ep.ready, api_key=key))
    return table.Route(model=model.name, policy=model.policy, endpoints=tuple(endpoints), source="config",
                       elastic=_elastic(model))


def _env(environ: Mapping[str, str], name: str | None, where: str) -> str:
    value = environ.get(name or "")
    if not value:
        raise ConfigError(f"{where}: environment variable {name} is not set")
    return value


class StaticSource:
    """Loads the file into the table and key store, then polls it and reloads on change."""

    def __init__(
        self,
        path: pathlib.Path,
        routes: table.RoutingTable,
        keys: auth.KeyStore,
        environ: Mapping[str, str] | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.path = path
        self.routes = routes
        self.keys = keys
        self.environ = os.environ if environ is None else environ
        self.poll_seconds = poll_seconds
        self._seen: str | None = None

    def load(self) -> None:
        """Reads and applies the file now; raises ConfigError (the entrypoint fails fast at start)."""
        self._apply(self._read())

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read gateway config {self.path}: {exc}") from None

    def _apply(self, text: str) -> None:
        if text == self._seen:
            return
        self._seen = text  # a broken version is reported once, not on every poll
        routes, keys = parse(text, self.environ)
        self.routes.replace(routes)
        self.keys.replace(keys)
        log.info("gateway config %s loaded: %d model(s)", self.path, len(routes))

    async def run(self) -> None:
        """Polls the file until cancelled; a bad edit is logged and the last good table stays.

        The whole (small) file is compared rather than its mtime: file timestamps are too coarse
        to tell apart two quick writes of the same size. A changed file is read twice, a moment
        apart, and applied only when both reads agree and it is not empty: a writer that
        truncates and then writes must not drop every route for an instant.
        """
        while True:
            await asyncio.sleep(self.poll_seconds)
            if not self.path.exists():
                continue  # mid-replace by an editor, or removed: keep serving the last good table
            try:
                text = self._read()
                if text == self._seen:
                    continue
                await asyncio.sleep(min(0.05, self.poll_seconds))
                if self._read() != text:
                    continue  # still being written: look again at the next poll
                if not text.strip():
                    if self._seen != text:
                        log.warning("gateway config %s is empty; keeping the previous table "
                                    "(write `models: []` to remove every model)", self.path)
                    self._seen = text
                    continue
                self._apply(text)
            except ConfigError as exc:
                log.error("gateway config %s not reloaded, keeping the previous one: %s", self.path, exc)
