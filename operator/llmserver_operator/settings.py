"""Operator settings, read from the environment (prefix `LLMSERVER_OPERATOR_`) in entrypoints only.

Builders take a `Settings` argument instead of reading the environment themselves, so the same
builders render identical objects in the operator, in `llmserver render` and in tests.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
import pydantic_settings

from llmserver_operator import images


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
        None, description="kopf peering object for several operator replicas; unset runs standalone."
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

    @pydantic.field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
