"""One hosted LLMServer: where it is in the lifecycle and the runtime process serving it. The
engine decides *when* it moves; the steps know *how*; adapters only read it to publish it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import llmserver_api
from llmserver_cli.hosting import process as process_mod, sources

class LoadFailed(Exception):
    """A step failed; the message is shown as the server's error (no secrets in it)."""


@dataclasses.dataclass(eq=False)
class Hosted:
    """One server on this host; `changed` is called on every change the adapter must publish."""

    key: str  # the server's name locally, namespace/name on a Mac
    server: llmserver_api.LLMServer
    origin: sources.Origin  # source.pvc claims resolve against this manifest file's folder or models root
    changed: Callable[[], None]
    phase: str = "Pending"  # Downloading, Starting, Ready, Unloading, Unloaded, Failed
    message: str = ""
    port: int | None = None
    download_bytes: int | None = None
    download_total: int | None = None
    last_used: float | None = None  # wall-clock time of the last request seen
    memory_bytes: int | None = None  # estimated, when the host evicts by memory
    usage: tuple[float, float] | None = None  # last activity.signature of its /metrics
    process: process_mod.ManagedProcess | None = None
    task: asyncio.Task[None] | None = None
    wakeable: bool = False  # unloaded by idle time or eviction: the next request restarts it
    draining: bool = False  # re-routed away, waiting for the gateway to re-read its config
    wanted: bool = False  # a request arrived while draining
    adapter: str | None = None  # the adapter being downloaded now (download_bytes are its progress)
    adapter_progress: dict[str, tuple[int, int | None]] = dataclasses.field(default_factory=dict)
    adapter_failures: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> download failure

    @property
    def model(self) -> str:
        """The served model name."""
        return self.server.spec.model

    @property
    def self_hosted(self) -> bool:
        """False for a proxy-mode server: nothing runs here, requests go to its provider."""
        return self.server.spec.mode == llmserver_api.Mode.SELF_HOSTED

    @property
    def resident(self) -> bool:
        """True while a runtime process runs (starting or ready): it holds memory."""
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        """The runtime's pid while one is attached."""
        return self.process.pid if self.process is not None else None

    @property
    def base_url(self) -> str | None:
        """The runtime's base URL (without /v1) once a port is assigned."""
        return f"http://127.0.0.1:{self.port}" if self.port else None

    @property
    def loading(self) -> bool:
        """True while a bring-up is under way and not yet Ready."""
        return self.task is not None and not self.task.done() and self.phase != "Ready"

    @property
    def log_name(self) -> str:
        """The key as a file name (namespace/name -> namespace_name)."""
        return self.key.replace("/", "_")

    def set(self, phase: str, message: str = "") -> None:
        """Moves to `phase` and tells the adapter."""
        self.phase = phase
        self.message = message
        self.changed()

    def touch(self) -> None:
        """Records use now, for idle unload and the LRU order."""
        self.last_used = time.time()
