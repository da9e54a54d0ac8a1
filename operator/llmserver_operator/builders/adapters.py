"""LoRA adapters (spec.adapters): where each lands in the cache, its download Job, and how each
engine takes it.

Each downloaded adapter gets its own Job `N-adapter-<hash8>` running the same `llmserver-runtime
download` as the model's Job, onto the same cache claim, as the same download identity, with
`--report-adapter NAME` so its progress goes to status.adapters[NAME].download. One Job per
adapter (rather than one Job fetching several sources) keeps every Job immutable and its failure
its own: a broken adapter fails alone, the model and the other adapters are unaffected, and
adding an adapter never re-runs a finished download.

Engines that load adapters live (vLLM, transformers) get them from the operator through the
runtime's `/v1/load_lora_adapter` (llmserver_operator.adapters): their pod template never
changes with the adapters listed (the runtime trusts the cache mount, /models, for live loads;
vLLM gets `--enable-lora` once: engine_flags). The others take `--adapter NAME=PATH` at start,
so a change rolls their pods (docs/adapters.md).
"""

from __future__ import annotations

import posixpath

import llmserver_api
from llmserver_api import paths

from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import common, download

Backend = llmserver_api.Backend
Adapter = llmserver_api.llmserver.Adapter
Source = llmserver_api.llmserver.Source

# Engines whose runtime loads and unloads adapters while it serves (POST /v1/load_lora_adapter).
LIVE_BACKENDS = frozenset({Backend.VLLM, Backend.TRANSFORMERS})


# Engines that cannot load LoRA adapters at all: mlx-vlm's module names do not match peft's, and
# its runtime refuses --adapter rather than serve the base model under an adapter's name.
NO_ADAPTERS = frozenset({Backend.MLX_VLM})


def unsupported(spec: llmserver_api.LLMServerSpec) -> str | None:
    """Why this server's (resolved) engine cannot serve spec.adapters, or None."""
    if spec.adapters and spec.backend in NO_ADAPTERS:
        return f"the {spec.backend.value} backend cannot load LoRA adapters; use mlx for a text model"
    return None


def loads_live(spec: llmserver_api.LLMServerSpec) -> bool:
    """Whether adapters reach this server's replicas through the runtime's load endpoint (no restart)."""
    return spec.backend in LIVE_BACKENDS


def engine_flags(spec: llmserver_api.LLMServerSpec) -> list[str]:
    """Engine flags a live engine needs to take adapters at all: vLLM switches LoRA on only at start
    (`--enable-lora`; rank up to vLLM's default 16 and one adapter per batch unless spec.extraArgs
    set --max-lora-rank / --max-loras). Present while spec.adapters is not empty, so the pod
    template changes once (from no adapters to some) and never with the adapters themselves."""
    if spec.backend != Backend.VLLM or not spec.adapters or "--enable-lora" in spec.extra_args:
        return []
    return ["--enable-lora"]


def needs_download(adapter: Adapter) -> bool:
    """Hub, S3 and URL adapters are downloaded; a PVC adapter is read in place."""
    return adapter.source.pvc is None


def relative_path(source: Source) -> str:
    """The source's path relative to the cache mount (as builders.common.model_path lays it out)."""
    if source.pvc is not None:
        return source.pvc.path
    if source.s3 is not None:
        return paths.s3_path(source.s3.bucket, source.s3.path, source.s3.endpoint)
    if source.url is not None:
        return paths.url_path(source.url.url, source.url.sha256)
    assert source.hugging_face is not None
    hf = source.hugging_face
    return paths.huggingface_model_path(hf.repo, hf.revision, hf.file)


def adapter_path(adapter: Adapter) -> str:
    """Absolute path of the adapter inside the runtime container (under /models)."""
    relative = relative_path(adapter.source)
    return posixpath.join(paths.CACHE_MOUNT, relative) if relative else paths.CACHE_MOUNT


def unmounted_claim(server: llmserver_api.LLMServer, adapter: Adapter, settings: settings_mod.Settings) -> str | None:
    """The claim of a PVC adapter that the runtime pods do not mount (only the model's claim is
    mounted, at /models), else None. Such an adapter cannot be served: status says so."""
    pvc = adapter.source.pvc
    if pvc is None or pvc.claim_name == common.cache_claim_name(server, settings):
        return None
    return pvc.claim_name


def source_hash(adapter: Adapter) -> str:
    """8 hex chars naming what is downloaded for this adapter (its name and source, no credentials)."""
    return common.digest({"adapter": adapter.name, "source": adapter.source.to_wire()}, length=8)


def job_name(server: llmserver_api.LLMServer, adapter: Adapter) -> str:
    """`N-adapter-<hash8>`: a new source (or name) is a new Job; the old one is removed."""
    return f"{common.name_of(server)}-adapter-{source_hash(adapter)}"


def download_args(server: llmserver_api.LLMServer, adapter: Adapter) -> list[str]:
    """The model downloader's arguments for the adapter's source, reporting into its status entry."""
    return [
        "download", *download.source_args(adapter.source),
        "--cache-dir", paths.CACHE_MOUNT,
        "--report-to", f"{common.namespace_of(server)}/{common.name_of(server)}",
        "--report-adapter", adapter.name,
    ]  # fmt: skip


def build_adapter_job(server: llmserver_api.LLMServer, adapter: Adapter,
                      settings: settings_mod.Settings) -> common.Manifest:
    """The adapter's download Job (the model's Job with the adapter's source and name)."""
    job = download.build_source_job(server, settings, adapter.source, job_name(server, adapter),
                                    download_args(server, adapter))
    job["metadata"]["annotations"] = {"serving.llmserver.dev/adapter": adapter.name}
    return job


def adapter_of(job: common.Manifest) -> str | None:
    """The adapter a download Job fetches (None: the model's own Job)."""
    return ((job.get("metadata") or {}).get("annotations") or {}).get("serving.llmserver.dev/adapter")


def argv_adapters(server: llmserver_api.LLMServer, ready: frozenset[str] | None = None) -> list[tuple[str, str]]:
    """(name, path) of the adapters a restart engine's pods start with: those `ready` (downloaded;
    None: all, as `llmserver render` shows them); none for live engines (the operator loads theirs)."""
    if loads_live(server.spec) or unsupported(server.spec):
        return []
    return [(a.name, adapter_path(a)) for a in server.spec.adapters if ready is None or a.name in ready]
