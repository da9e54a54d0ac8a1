"""Gateway tunables, read once in the entrypoint from flags and `LLMSERVER_GATEWAY_*` env vars."""

from __future__ import annotations

from typing import Annotated

import pydantic
import pydantic_settings

from llmserver_api import proxy_policy


class GatewaySettings(pydantic_settings.BaseSettings):
    """Timeouts, retries and balancing knobs. Defaults suit a cluster; tests shorten the timeouts."""

    model_config = pydantic_settings.SettingsConfigDict(env_prefix="LLMSERVER_GATEWAY_", extra="ignore")

    connect_timeout: float = pydantic.Field(
        5.0, gt=0, description="Seconds to open a connection to an endpoint before trying another one."
    )
    read_timeout: float = pydantic.Field(
        600.0,
        gt=0,
        description="Seconds an upstream may stay silent (before its first byte or between chunks); "
        "long prompts on slow hardware need minutes.",
    )
    max_retries: int = pydantic.Field(
        2, ge=0, le=10, description="Extra attempts on other endpoints after a connection error or 502/503."
    )
    prefix_chars: int = pydantic.Field(
        256, ge=1, le=100_000, description="Prompt characters hashed by the PrefixHash policy."
    )
    load_factor: float = pydantic.Field(
        1.25, ge=1.0, le=100.0, description="PrefixHash bound: a replica takes at most this times the mean load."
    )
    max_connections: int = pydantic.Field(
        4096, ge=1, description="Upper bound of open upstream connections (all endpoints together)."
    )
    max_connections_per_endpoint: int = pydantic.Field(
        512,
        ge=1,
        description="Open connections to one endpoint or provider at most, so a slow one cannot take the "
        "whole pool from the others.",
    )
    pool_timeout: float = pydantic.Field(
        5.0, gt=0, description="Seconds a request waits for a free upstream connection before trying another endpoint."
    )
    max_response_bytes: int = pydantic.Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Largest upstream answer relayed (a stream counts all its chunks); beyond it the answer ends "
        "with an error.",
    )
    max_concurrent_requests: int = pydantic.Field(
        4096, ge=1, description="Model requests the gateway serves at once; more are answered 429 with Retry-After."
    )
    busy_retry_after: int = pydantic.Field(
        1, ge=1, le=3600, description="Retry-After seconds of the 429 sent when max_concurrent_requests is reached."
    )
    max_body_bytes: int = pydantic.Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (images arrive base64-encoded); larger is a 413 before it is read.",
    )
    body_timeout: float = pydantic.Field(
        60.0, gt=0, description="Seconds a client may take to send its request body (a slow sender holds a slot); "
        "then 408.",
    )
    max_json_depth: int = pydantic.Field(
        64, ge=4, le=512, description="Deepest nesting of JSON arrays/objects in a request body; deeper is a 400."
    )
    adapter_probe_seconds: float = pydantic.Field(
        5.0, gt=0, description="How often each replica's /v1/models is read again to learn the LoRA adapters it "
        "holds (new replicas are read at once).",
    )
    adapter_probe_timeout: float = pydantic.Field(
        2.0, gt=0, description="Seconds a replica may take to list its models (adapters) before it is skipped.",
    )
    config_poll_seconds: float = pydantic.Field(
        1.0, gt=0, description="How often the static config file is checked for changes."
    )
    resync_seconds: float = pydantic.Field(
        300.0, gt=0, description="Kubernetes watches are restarted with a full list this often."
    )
    secret_refresh_seconds: float = pydantic.Field(
        30.0, gt=0, description="Kubernetes mode: how often referenced Secrets are read again (key rotation)."
    )
    api_keys_secret: str | None = pydantic.Field(
        None,
        description="Kubernetes mode: Secret (`name` in the gateway's namespace, or `namespace/name`) "
        "whose `apiKeys` key holds the gateway API keys as YAML, in the static config's `apiKeys` "
        "shape. Unset: no auth.",
    )
    namespace: str | None = pydantic.Field(
        None, description="Kubernetes mode: watch only this namespace (default: all namespaces)."
    )
    agents_namespace: str = pydantic.Field(
        "llmserver-system",
        min_length=1,
        description="Kubernetes mode: namespace of the Mac agents' runtime key Secrets (the operator's "
        "apple_namespace). Only operator-managed Mac EndpointSlices naming a Secret `applenode-<node>-key` "
        "there get a key.",
    )
    proxy_allowed_hosts: Annotated[list[str], pydantic_settings.NoDecode] = pydantic.Field(
        default_factory=list,
        description="Proxy LLMServers (Kubernetes mode) may reach these hosts besides public ones (comma-separated "
        "host names, `*.domain`, IPs, CIDRs); loopback, link-local, private and cluster addresses are refused "
        "unless listed.",
    )
    proxy_cluster_cidrs: Annotated[list[str], pydantic_settings.NoDecode] = pydantic.Field(
        default_factory=list,
        description="The cluster's pod and service CIDRs (comma-separated): refused as Proxy upstreams unless "
        "listed, for clusters whose ranges are not private.",
    )

    @pydantic.field_validator("proxy_allowed_hosts", "proxy_cluster_cidrs", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @pydantic.model_validator(mode="after")
    def _policy_parses(self) -> GatewaySettings:
        self.proxy_policy()
        return self

    def proxy_policy(self) -> proxy_policy.HostPolicy:
        """The Proxy host allowlist (ValueError names a bad entry)."""
        return proxy_policy.HostPolicy.parse(self.proxy_allowed_hosts, self.proxy_cluster_cidrs)
