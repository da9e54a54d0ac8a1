"""How one host runs its models: built once by the adapter (local mode or the Mac agent) from its
own settings, then read by the engine and its steps; nothing here reads the environment."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """The knobs the lifecycle needs; the defaults are local mode's."""

    python: str  # interpreter that runs llmserver_runtime
    cache_dir: pathlib.Path  # model cache (Hugging Face sources download here)
    log_dir: pathlib.Path  # one log per runtime and per download
    env: dict[str, str]  # environment of the runtimes (see steps.child_env, clean_env.runtime_env)
    ready_timeout: float = 600.0  # seconds one runtime may take to answer /ready
    bind_host: str = "127.0.0.1"  # interface runtimes listen on
    port_range_start: int | None = None  # first port handed out in order; None: the kernel picks
    idle_unload: float = 0.0  # seconds unused before a model is stopped; 0 = never
    max_loaded: int = 0  # self-hosted runtimes resident at once; 0 = no cap
    wake_on_request: bool = False  # models unloaded by idle time or eviction restart on a request
    autoscaled_idle_unload: bool = True  # spec.autoscaling minReplicas 0 unloads idle ones (hosting.elastic)
    drain_seconds: float = 0.0  # between re-routing a model away and stopping its runtime
    report_downloads: bool = False  # downloader patches the LLMServer's status (`--report-to key`)
    where: str = "this machine"  # named in errors ("model path ... does not exist on <where>")
    download_env: dict[str, str] | None = None  # environment of downloads; None: `env` (clean_env.download_env)
    adapter_failures_alone: bool = False  # a failed adapter download fails only that adapter (Mac agent)


@dataclasses.dataclass(frozen=True)
class MemoryBudget:
    """Eviction by memory: before a load, least recently used models stop until the new one fits."""

    estimate: Callable[[pathlib.Path], int]  # bytes a model at this path takes once loaded
    available: Callable[[], int]  # bytes free for a new model now
