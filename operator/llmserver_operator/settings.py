"""Operator settings, read from the environment (prefix `LLMSERVER_OPERATOR_`) in entrypoints only.

Builders take a `Settings` argument instead of reading the environment themselves, so the same
builders render identical objects in the operator, in `llmserver render` and in tests.
"""

from __future__ import annotations

import socket
import uuid
from typing import Annotated, Any, Literal

import pydantic
import pydantic_settings
from llmserver_api import proxy_policy

from llmserver_operator import images


def default_network_policy_peers(namespace: str, release: str, chart: str) -> list[dict[str, Any]]:
    """The chart's gateway and operator pods (release `release` in `namespace`) and Prometheus: what the
    chart passes with its default values, so `llmserver render` shows a policy that admits them."""
    in_release = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    components = [{"namespaceSelector": in_release, "podSelector": {"matchLabels": {
        "app.kubernetes.io/component": component, "app.kubernetes.io/instance": release,
        "app.kubernetes.io/name": chart}}} for component in ("gateway", "operator")]
    return [*components, {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]


class Settings(pydantic_settings.BaseSettings):
    """Everything the operator needs that is not in an LLMServer's spec."""

    model_config = pydantic_settings.SettingsConfigDict(env_prefix="LLMSERVER_OPERATOR_", extra="ignore")

    runtime_images: dict[str, images.Flavour] = pydantic.Field(
        default_factory=images.default_catalog,
        description="Runtime image flavours by name (JSON): each image with the engines it carries and the GPU "
        "resources it serves; the operator picks one per LLMServer (images.choose).",
    )
    download_image: str = pydantic.Field(
        f"ghcr.io/llmserver/llmserver-operator:{images.DEFAULT_TAG}",
        description="Image of download Jobs: runs `llmserver-runtime download` and carries no ML library "
        "(the operator image).",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = pydantic.Field(
        "IfNotPresent", description="imagePullPolicy of every container the operator writes."
    )
    runtime_uid: int = pydantic.Field(
        10001, ge=1, description="Non-root uid/gid the runtime containers run as (the images' user, runtime-image/Dockerfile)."
    )
    default_cpu: str | None = pydantic.Field("1", description="CPU request when spec.resources.cpu is unset.")
    default_memory: str | None = pydantic.Field(
        "2Gi", description="Memory request when spec.resources.memory is unset (no limit is set then)."
    )
    gpu_resource_name: str = pydantic.Field(
        "nvidia.com/gpu",
        pattern=r"^[a-z0-9.-]+/[a-z0-9._-]+$",
        description="GPU extended resource used when an LLMServer leaves spec.resources.gpuResourceName unset.",
    )
    shm_size_limit: str | None = pydantic.Field(
        None, description="sizeLimit of the memory-backed /dev/shm given to vLLM pods; unset means no limit."
    )
    namespaces: Annotated[list[str], pydantic_settings.NoDecode] = pydantic.Field(
        default_factory=list, description="Namespaces to watch (comma-separated); empty watches all."
    )
    cache_claim_name: str = pydantic.Field(
        "llmserver-model-cache", description="Model cache PVC used when spec.cache.claimName is unset."
    )
    cache_size: str = pydantic.Field("100Gi", description="Size of a cache PVC the operator creates.")
    cache_storage_class: str | None = pydantic.Field(None, description="StorageClass of created cache PVCs.")
    cache_access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = pydantic.Field(
        "ReadWriteOnce", description="Access mode of created cache PVCs (ReadWriteMany for multi-node clusters)."
    )
    gateway_url: str = pydantic.Field(
        "http://llmserver-gateway.{namespace}.svc/v1",
        description="Gateway base URL written to status.endpoint; {namespace} is the LLMServer's namespace.",
    )
    download_backoff_limit: int = pydantic.Field(6, ge=0, description="backoffLimit of download Jobs.")
    retry_delay_seconds: float = pydantic.Field(
        30.0, gt=0, description="Delay before re-checking something the operator waits for (a missing Secret)."
    )
    kubeconfig: str | None = pydantic.Field(
        None, description="Kubeconfig file; unset uses $KUBECONFIG, then the in-cluster service account."
    )
    workers: int = pydantic.Field(16, ge=1, le=256, description="Threads running reconciles (and API connections).")
    liveness_endpoint: str | None = pydantic.Field(
        None, description="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz."
    )
    metrics_port: int = pydantic.Field(
        0, ge=0, le=65535, description="Port of the operator's Prometheus /metrics endpoint; 0 turns it off."
    )
    metrics_address: str = pydantic.Field(
        "0.0.0.0", min_length=1, description="Address the /metrics endpoint binds to (127.0.0.1: this host only)."
    )
    peering_name: str | None = pydantic.Field(
        None, description="kopf peering object for several operator replicas; unset runs standalone. Peers of equal "
        "priority all pause: prefer leader_election."
    )
    leader_election: bool = pydantic.Field(
        False, description="Run kopf only while holding a coordination.k8s.io Lease, so that several replicas fail "
        "over instead of reconciling at once (llmserver_operator.leader)."
    )
    leader_election_namespace: str = pydantic.Field(
        "llmserver-system", min_length=1, description="Namespace of the leader Lease (the operator's own)."
    )
    leader_election_lease_name: str = pydantic.Field(
        "llmserver-operator", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", description="Name of the leader Lease."
    )
    leader_election_identity: str = pydantic.Field(
        default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}", min_length=1,
        description="This replica's holderIdentity (default: host name, i.e. the pod's name, and a random suffix).",
    )
    leader_election_lease_seconds: int = pydantic.Field(
        15, ge=2, le=3600, description="Seconds without a renewal after which another replica takes the Lease."
    )
    leader_election_renew_deadline_seconds: float = pydantic.Field(
        10.0, gt=0, description="Seconds the leader keeps trying to renew before it stops (below the lease duration)."
    )
    leader_election_retry_seconds: float = pydantic.Field(
        2.0, gt=0, description="Seconds between attempts to take or renew the Lease."
    )

    network_policy: bool = pydantic.Field(
        True, description="Write NetworkPolicy `N` for each cluster-hosted server, so that only `network_policy_peers` "
        "reach its runtime pods (around the gateway's keys otherwise). Needs a CNI that enforces NetworkPolicy.",
    )
    network_policy_peers: list[dict[str, Any]] = pydantic.Field(
        default_factory=lambda: default_network_policy_peers("llmserver-system", "llmserver", "llmserver"),
        description="Who may reach runtime pods (JSON list of NetworkPolicyPeer objects): the chart's gateway and "
        "operator pods in its namespace, Prometheus, and networkPolicy.extraFrom. Empty admits nobody.",
    )

    gateway_service: str | None = pydantic.Field(
        None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The gateway Service as namespace/name: the autoscaler reads `GET /internal/load` of each of "
        "its ready endpoints (EndpointSlices). Unset: autoscaled servers are only kept within [min, max].",
    )
    autoscale_interval_seconds: float = pydantic.Field(
        1.0, gt=0, le=600, description="Seconds between autoscaler rounds (one read of every gateway replica)."
    )
    autoscale_timeout_seconds: float = pydantic.Field(
        1.0, gt=0, le=60, description="How long the autoscaler waits for one gateway's /internal/load; a gateway "
        "that does not answer in time blocks scale-downs for that round.",
    )

    apple_enabled: bool = pydantic.Field(
        True, description="Place mlx / mlx-vlm servers on registered Macs (watches AppleNodes and Leases)."
    )
    apple_namespace: str = pydantic.Field(
        "llmserver-system", description="Namespace of the Mac agents' Leases and runtime key Secrets."
    )
    apple_default_model_memory: str = pydantic.Field(
        "4Gi", description="Memory assumed for a Mac model until spec.resources.memory or the agent says more."
    )

    proxy_allowed_hosts: Annotated[list[str], pydantic_settings.NoDecode] = pydantic.Field(
        default_factory=list,
        description="Hosts Proxy LLMServers may name besides public ones (comma-separated host names, `*.domain`, "
        "IPs, CIDRs; the gateway's setting of the same name). Others get Ready=False ProxyNotAllowed.",
    )
    proxy_cluster_cidrs: Annotated[list[str], pydantic_settings.NoDecode] = pydantic.Field(
        default_factory=list,
        description="The cluster's pod and service CIDRs (comma-separated): refused as Proxy hosts unless listed.",
    )

    @pydantic.field_validator("namespaces", "proxy_allowed_hosts", "proxy_cluster_cidrs", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @pydantic.model_validator(mode="after")
    def _policy_parses(self) -> Settings:
        self.proxy_policy()
        return self

    @pydantic.model_validator(mode="after")
    def _leader_timings_nest(self) -> Settings:
        if not (self.leader_election_retry_seconds < self.leader_election_renew_deadline_seconds
                < self.leader_election_lease_seconds):
            raise ValueError("leader election needs retry < renew deadline < lease duration "
                             f"({self.leader_election_retry_seconds} < {self.leader_election_renew_deadline_seconds} "
                             f"< {self.leader_election_lease_seconds})")
        return self

    def proxy_policy(self) -> proxy_policy.HostPolicy:
        """The Proxy host allowlist (ValueError names a bad entry)."""
        return proxy_policy.HostPolicy.parse(self.proxy_allowed_hosts, self.proxy_cluster_cidrs)
