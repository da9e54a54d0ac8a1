"""The LLMServer resource: one served model, self-hosted on an engine or proxied to a provider."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import pydantic

from llmserver_api import common, elastic, rules
from llmserver_api.sources import (  # noqa: F401 (re-exported: llmserver.Source is the public name)
    Adapter,
    AdapterStatus,
    DownloadProgress,
    HuggingFaceSource,
    PvcSource,
    S3Source,
    SecretRef,
    Source,
    UrlSource,
)

KIND = "LLMServer"
PLURAL = "llmservers"


class Mode(str, enum.Enum):
    """Where the model runs."""

    SELF_HOSTED = "SelfHosted"
    PROXY = "Proxy"


class Backend(str, enum.Enum):
    """The inference engine. `auto` picks one from the model's files and the hardware."""

    LLAMA_CPP = "llama-cpp"
    TRANSFORMERS = "transformers"
    VLLM = "vllm"
    MLX = "mlx"
    MLX_VLM = "mlx-vlm"
    AUTO = "auto"


class Capability(str, enum.Enum):
    """What the served model can do; requests needing a missing capability get a 400."""

    TEXT_GENERATION = "TextGeneration"
    EMBEDDINGS = "Embeddings"
    VISION = "Vision"
    RERANK = "Rerank"


class Phase(str, enum.Enum):
    """Coarse lifecycle of an LLMServer, shown by `kubectl get llms`."""

    PENDING = "Pending"
    DOWNLOADING = "Downloading"
    STARTING = "Starting"
    READY = "Ready"
    FAILED = "Failed"
    UNLOADED = "Unloaded"


class RoutingPolicy(str, enum.Enum):
    """How the gateway spreads requests over the replicas of one model."""

    LEAST_OUTSTANDING = "LeastOutstanding"
    PREFIX_HASH = "PrefixHash"


class Toleration(common.ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = pydantic.Field(None, description="Taint key the toleration applies to.")
    operator: Literal["Exists", "Equal"] | None = pydantic.Field(None, description="Exists or Equal.")
    value: str | None = pydantic.Field(None, description="Taint value for the Equal operator.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = pydantic.Field(
        None, description="Taint effect to tolerate; empty means all."
    )
    toleration_seconds: int | None = pydantic.Field(None, description="How long a NoExecute taint is tolerated.")


class Resources(common.ApiModel):
    """Compute for each replica of a self-hosted model."""

    gpus: int = pydantic.Field(0, ge=0, le=64, description="GPUs per replica, requested and limited.")
    gpu_resource_name: str | None = pydantic.Field(
        None,
        pattern=r"^[a-z0-9.-]+/[a-z0-9._-]+$",
        description="Extended resource name of the GPU (e.g. nvidia.com/gpu, amd.com/gpu); unset: the operator's "
        "default (the chart's resource profile, nvidia.com/gpu out of the box).",
    )
    cpu: str | None = pydantic.Field(None, pattern=common.QUANTITY, description="CPU request, e.g. '2' or '500m'.")
    memory: str | None = pydantic.Field(None, pattern=common.QUANTITY, description="Memory request and limit, e.g. 8Gi.")
    node_selector: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Node labels the pods must match."
    )
    tolerations: list[Toleration] = pydantic.Field(
        default_factory=list, description="Taints the pods tolerate (e.g. a GPU node taint)."
    )
    affinity: dict[str, Any] | None = pydantic.Field(
        None, description="A core/v1 Affinity object, passed to the pods unchanged."
    )


class LlamaCppConfig(common.ApiModel):
    """Settings of the llama-cpp backend (llama-cpp-python)."""

    n_gpu_layers: int | None = pydantic.Field(None, ge=-1, description="Layers offloaded to GPU; -1 offloads all.")
    n_ctx: int | None = pydantic.Field(None, ge=0, le=1048576, description="Context length; 0 takes the model's.")
    n_batch: int | None = pydantic.Field(None, ge=1, le=65536, description="Prompt processing batch size.")
    n_threads: int | None = pydantic.Field(None, ge=1, le=512, description="CPU threads for generation.")
    parallel: int | None = pydantic.Field(
        None, ge=1, le=256,
        description="Sequences decoded together in one batch (continuous batching slots); the context is "
        "shared by them. Unset: chosen from the hardware.",
    )  # fmt: skip


VllmDtype = Literal["auto", "half", "float16", "bfloat16", "float", "float32"]
TorchDtype = Literal["auto", "float16", "bfloat16", "float32"]


class VllmConfig(common.ApiModel):
    """Settings of the vLLM backend."""

    tensor_parallel_size: int | None = pydantic.Field(
        None, ge=1, le=64, description="GPUs one replica shards over; defaults to resources.gpus."
    )
    gpu_memory_utilization: float | None = pydantic.Field(
        None, gt=0, le=1, description="Fraction of GPU memory vLLM may use (0-1]."
    )
    max_model_len: int | None = pydantic.Field(None, ge=1, description="Maximum context length in tokens.")
    dtype: VllmDtype = pydantic.Field("auto", description="Weight and activation dtype.")


class TransformersConfig(common.ApiModel):
    """Settings of the transformers (PyTorch) backend."""

    # Explicit aliases: the generated camelCase would be loadIn4Bit, the public wire name is loadIn4bit.
    load_in_4bit: bool = pydantic.Field(
        False, alias="loadIn4bit", description="Quantise weights to 4 bit with bitsandbytes."
    )
    load_in_8bit: bool = pydantic.Field(
        False, alias="loadIn8bit", description="Quantise weights to 8 bit with bitsandbytes."
    )
    dtype: TorchDtype = pydantic.Field("auto", description="torch dtype of the weights.")
    max_batch_size: int | None = pydantic.Field(
        None, ge=1, le=256, description="Requests decoded together in one forward pass; unset: the engine's default."
    )

    @pydantic.model_validator(mode="after")
    def _exclusive(self) -> TransformersConfig:
        _enforce(rules.TRANSFORMERS_RULES, self.to_wire())
        return self


class MlxConfig(common.ApiModel):
    """Settings of the mlx backend (mlx-lm)."""

    max_kv_size: int | None = pydantic.Field(None, ge=1, description="Rotating KV cache size in tokens.")


class MlxVlmConfig(common.ApiModel):
    """Settings of the mlx-vlm backend."""

    max_kv_size: int | None = pydantic.Field(None, ge=1, description="Rotating KV cache size in tokens.")
    max_tokens: int | None = pydantic.Field(None, ge=1, description="Default completion length when a request sets none.")


class ProxyConfig(common.ApiModel):
    """An external OpenAI-compatible provider the gateway forwards this model to."""

    url: str = pydantic.Field(
        ..., pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=2000, description="Base URL, e.g. https://api.openai.com/v1."
    )
    upstream_model: str | None = pydantic.Field(
        None, min_length=1, description="Model name at the provider; defaults to spec.model."
    )
    api_key_secret_ref: common.SecretKeyRef | None = pydantic.Field(
        None, description="Secret key holding the provider's API key, sent as a Bearer token."
    )


class CacheConfig(common.ApiModel):
    """The model cache volume. Several LLMServers may share one claim."""

    claim_name: str | None = pydantic.Field(
        None, min_length=1, max_length=253, description="Cache PVC name; defaults to the operator's shared cache."
    )
    size: str | None = pydantic.Field(None, pattern=common.QUANTITY, description="Requested size when the claim is created.")
    storage_class_name: str | None = pydantic.Field(None, description="StorageClass of a newly created claim.")
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] | None = pydantic.Field(
        None, description="Access mode of a newly created claim."
    )
    delete_on_server_delete: bool = pydantic.Field(
        False, description="Delete the cache claim with this LLMServer (only if this LLMServer created it)."
    )


class RoutingConfig(common.ApiModel):
    """How the gateway balances this model's replicas."""

    policy: common.LaxEnum[RoutingPolicy] = pydantic.Field(
        RoutingPolicy.LEAST_OUTSTANDING, description="LeastOutstanding or PrefixHash (keeps shared prefixes on one replica)."
    )


class ApplePlacement(common.ApiModel):
    """Placement of mlx / mlx-vlm models on registered Macs (AppleNode)."""

    node_selector: dict[str, str] = pydantic.Field(
        default_factory=dict, description="AppleNode labels the chosen Mac must carry."
    )


class LLMServerSpec(common.ApiModel):
    """Desired state of one served model."""

    model: str = pydantic.Field(
        ...,
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
        description="The model name clients put in the request's `model` field.",
    )
    mode: common.LaxEnum[Mode] = pydantic.Field(Mode.SELF_HOSTED, description="SelfHosted runs an engine; Proxy forwards to a provider.")
    backend: common.LaxEnum[Backend] = pydantic.Field(Backend.AUTO, description="Inference engine; auto picks from the model's files.")
    source: Source | None = pydantic.Field(None, description="Where the model comes from (SelfHosted only).")
    capabilities: list[common.LaxEnum[Capability]] | None = pydantic.Field(
        None, min_length=1, description="What the model can do; detected from the model when omitted."
    )
    replicas: int = pydantic.Field(1, ge=0, le=1000, description="Replicas of the runtime; 0 unloads the model.")
    resources: Resources = pydantic.Field(default_factory=Resources, description="Compute for each replica.")
    image: str | None = pydantic.Field(
        None,
        min_length=1,
        max_length=512,
        pattern=r"^[^\s]+$",
        description="Runtime image for this server's pods (repository:tag or repository@sha256:...); unset: the "
        "operator picks a flavour of its image catalog (chart value runtime.images) from the backend and GPUs.",
    )
    llama_cpp: LlamaCppConfig | None = pydantic.Field(None, description="llama-cpp settings.")
    vllm: VllmConfig | None = pydantic.Field(None, description="vLLM settings.")
    transformers: TransformersConfig | None = pydantic.Field(None, description="transformers settings.")
    mlx: MlxConfig | None = pydantic.Field(None, description="mlx settings.")
    mlx_vlm: MlxVlmConfig | None = pydantic.Field(None, description="mlx-vlm settings.")
    extra_args: list[Annotated[str, pydantic.Field(max_length=2048)]] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Extra arguments passed to the engine unchanged (vLLM flags; key=value for the other engines). "
        "They may not enable remote code (use trustRemoteCode) nor set what a typed field sets (--model, "
        "--served-model-name, --host, --port, or a flag of the backend's config block such as --n-ctx).",
    )
    trust_remote_code: bool = pydantic.Field(
        False, description="Let the model repository run its own Python code (transformers, vLLM)."
    )
    proxy: ProxyConfig | None = pydantic.Field(None, description="The external provider (Proxy mode only).")
    cache: CacheConfig = pydantic.Field(default_factory=CacheConfig, description="The model cache volume.")
    routing: RoutingConfig = pydantic.Field(default_factory=RoutingConfig, description="Gateway load balancing.")
    apple: ApplePlacement | None = pydantic.Field(
        None, description="Ask for placement on a registered Mac (for backend auto, mlx or mlx-vlm)."
    )
    autoscaling: elastic.Autoscaling | None = pydantic.Field(
        None,
        description="Scale replicas on requests in flight (the operator then owns spec.replicas), hold "
        "requests while the model is cold, answer from a fallback meanwhile (SelfHosted only).",
    )
    adapters: list[Adapter] = pydantic.Field(
        default_factory=list, max_length=64,
        description="LoRA adapters on top of the model, each served as `<spec.model>:<name>` (SelfHosted only).",
    )  # fmt: skip

    @pydantic.field_validator("capabilities")
    @classmethod
    def _unique_capabilities(cls, value: list[Capability] | None) -> list[Capability] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("spec.capabilities lists a capability twice")
        return value

    @pydantic.model_validator(mode="after")
    def _cross_field(self) -> LLMServerSpec:
        _enforce(rules.spec_rules(), self.to_wire())
        return self


class Placement(common.ApiModel):
    """Where an Apple-placed model runs."""

    node: str = pydantic.Field(..., description="The AppleNode serving the model.")
    address: str | None = pydantic.Field(None, description="The Mac's address.")
    port: int | None = pydantic.Field(None, ge=1, le=65535, description="The runtime's port on the Mac.")
    reason: str = pydantic.Field("", description="Why this node was chosen.")


class Resolution(common.ApiModel):
    """What the operator decided for this server, and why: the engine and capabilities (`backend: auto`,
    capability detection) and the runtime image."""

    backend: common.LaxEnum[Backend] | None = pydantic.Field(None, description="The engine in use.")
    capabilities: list[common.LaxEnum[Capability]] = pydantic.Field(
        default_factory=list, description="The capabilities in use."
    )
    format: str | None = pydantic.Field(None, description="The detected model format.")
    reason: str = pydantic.Field("", description="Why this engine and these capabilities.")
    image: str | None = pydantic.Field(None, description="The runtime image the pods run.")
    flavour: str | None = pydantic.Field(None, description="The image catalog flavour chosen (unset with spec.image).")
    image_reason: str | None = pydantic.Field(
        None, description="Why this image, or why none fits (reason NoRuntimeImage on the Ready condition)."
    )


class LLMServerStatus(common.ApiModel):
    """Observed state, written by the operator (and the download Job / Mac agent)."""

    model_config = pydantic.ConfigDict(extra="ignore")

    phase: common.LaxEnum[Phase] | None = pydantic.Field(None, description="Pending, Downloading, Starting, Ready, Failed or Unloaded.")
    message: str | None = pydantic.Field(None, description="One-line summary of the current state.")
    conditions: list[common.Condition] = pydantic.Field(
        default_factory=list, description="Downloaded, Ready, Progressing, Degraded and others."
    )
    observed_generation: int | None = pydantic.Field(None, description="The generation last reconciled.")
    endpoint: str | None = pydantic.Field(None, description="Gateway base URL to call this model through.")
    replicas: int | None = pydantic.Field(
        None,
        description="Runtime replicas observed (the scale subresource's status.replicas): the runtime "
        "Deployment's status.replicas; on a Mac 1 while its runtime is loaded, else 0; 0 for Proxy.",
    )
    selector: str | None = pydantic.Field(
        None,
        description="Label selector of the runtime pods, as a string (the scale subresource's status.selector, "
        "read by HorizontalPodAutoscalers and KEDA).",
    )
    ready_replicas: int = pydantic.Field(0, ge=0, description="Replicas ready to serve.")
    download: DownloadProgress | None = pydantic.Field(None, description="Model download progress.")
    placement: Placement | None = pydantic.Field(None, description="Mac placement (mlx, mlx-vlm).")
    resolved: Resolution | None = pydantic.Field(None, description="Resolved backend and capabilities.")
    autoscaling: elastic.AutoscalingStatus | None = pydantic.Field(None, description="The autoscaler's view.")
    adapters: list[AdapterStatus] = pydantic.Field(default_factory=list, description="Each adapter's state.")


class LLMServer(common.ApiModel):
    """A whole LLMServer manifest: apiVersion, kind, metadata, spec and status.

    Unknown top-level fields are refused (ApiModel's extra="forbid"), as kubectl's strict field
    validation refuses them; only `status` ignores unknown fields (kopf keeps its own state there).
    """

    api_version: Literal["serving.llmserver.dev/v1alpha1"] = pydantic.Field(
        common.API_VERSION, description="serving.llmserver.dev/v1alpha1"
    )
    kind: Literal["LLMServer"] = pydantic.Field(KIND, description="LLMServer")
    metadata: common.ObjectMeta = pydantic.Field(default_factory=common.ObjectMeta, description="Object metadata.")
    spec: LLMServerSpec = pydantic.Field(..., description="Desired state.")
    status: LLMServerStatus | None = pydantic.Field(None, description="Observed state.")

    @pydantic.model_validator(mode="after")
    def _name(self) -> LLMServer:
        if self.metadata.name is not None:
            _enforce(rules.ROOT_RULES, {"metadata": {"name": self.metadata.name}})
        return self


_enforce = rules.enforce
