"""The AppleNode resource: a registered Apple Silicon Mac that serves mlx / mlx-vlm models.

Macs are not Kubernetes nodes; the Mac agent (`llmserver agent`) registers one AppleNode per
Mac, heartbeats through a coordination.k8s.io Lease, and reports the models it runs.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from llmserver_api import common

KIND = "AppleNode"
PLURAL = "applenodes"


class AppleNodeSpec(common.ApiModel):
    """What the Mac is; written by its agent at registration."""

    address: str = pydantic.Field(
        ...,
        min_length=1,
        max_length=253,
        description="IP address the cluster reaches the Mac's runtimes on (used in EndpointSlices).",
    )
    chip: str = pydantic.Field("", max_length=100, description="Apple Silicon chip, e.g. 'Apple M2 Max'.")
    unified_memory: str = pydantic.Field(
        ..., pattern=common.QUANTITY, description="Unified memory the Mac has, e.g. 64Gi."
    )
    reserved_memory: str = pydantic.Field(
        "4Gi", pattern=common.QUANTITY, description="Memory kept free for macOS and other work."
    )
    os: str = pydantic.Field("", max_length=100, description="Operating system and version.")
    backends: list[Literal["mlx", "mlx-vlm"]] = pydantic.Field(
        default_factory=lambda: ["mlx", "mlx-vlm"], description="Backends the agent can run."
    )
    port_range_start: int = pydantic.Field(
        18000, ge=1024, le=65000, description="First port the agent gives to runtimes."
    )
    unschedulable: bool = pydantic.Field(False, description="Place no new models on this Mac.")


class AppleNodeModel(common.ApiModel):
    """One model the agent runs (or is preparing) on this Mac."""

    server: str = pydantic.Field(..., description="The LLMServer, as namespace/name.")
    model: str = pydantic.Field(..., description="Served model name.")
    state: Literal["Downloading", "Starting", "Ready", "Failed", "Unloaded"] = pydantic.Field(
        ..., description="Where the model is in its lifecycle on this Mac."
    )
    port: int | None = pydantic.Field(None, ge=1, le=65535, description="The runtime's port.")
    memory_bytes: int | None = pydantic.Field(None, ge=0, description="Estimated memory the model takes.")
    message: str = pydantic.Field("", description="Details, e.g. a load error.")


class AppleNodeStatus(common.ApiModel):
    """Observed state of the Mac, written by its agent and the operator."""

    model_config = pydantic.ConfigDict(extra="ignore")

    conditions: list[common.Condition] = pydantic.Field(
        default_factory=list, description="Ready (heartbeat within the lease) and others."
    )
    last_heartbeat_time: str | None = pydantic.Field(None, description="RFC 3339 time of the last heartbeat.")
    models: list[AppleNodeModel] = pydantic.Field(default_factory=list, description="Models on this Mac.")
    model_count: int = pydantic.Field(0, ge=0, description="Number of models on this Mac.")
    allocated_memory_bytes: int = pydantic.Field(0, ge=0, description="Memory promised to placed models.")


class AppleNode(common.ApiModel):
    """A whole AppleNode manifest; unknown top-level fields are refused, as by the API server."""

    api_version: Literal["serving.llmserver.dev/v1alpha1"] = pydantic.Field(
        common.API_VERSION, description="serving.llmserver.dev/v1alpha1"
    )
    kind: Literal["AppleNode"] = pydantic.Field(KIND, description="AppleNode")
    metadata: common.ObjectMeta = pydantic.Field(default_factory=common.ObjectMeta, description="Object metadata.")
    spec: AppleNodeSpec = pydantic.Field(..., description="What the Mac is.")
    status: AppleNodeStatus | None = pydantic.Field(None, description="Observed state.")
