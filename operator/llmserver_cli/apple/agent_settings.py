"""Settings of the Mac agent (`llmserver agent`), from flags or env LLMSERVER_AGENT_*."""

from __future__ import annotations

import pathlib
import socket
import sys

import pydantic
import pydantic_settings


class AgentSettings(pydantic_settings.BaseSettings):
    """One Mac's agent. Only `address` has no sensible default."""

    model_config = pydantic_settings.SettingsConfigDict(env_prefix="LLMSERVER_AGENT_", extra="ignore")

    node_name: str = pydantic.Field(
        default_factory=lambda: socket.gethostname().split(".")[0].lower(),
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="AppleNode name (defaults to the short host name).",
    )
    address: str = pydantic.Field(..., description="IP address the cluster reaches this Mac's runtimes on.")
    bind_host: str = pydantic.Field("0.0.0.0", description="Interface the runtimes listen on.")
    unified_memory: str | None = pydantic.Field(None, description="Override the detected memory, e.g. 64Gi.")
    reserved_memory: str = pydantic.Field("4Gi", description="Memory kept free for macOS.")
    namespace: str = pydantic.Field("llmserver-system", description="Namespace of the Lease and the key Secret.")
    lease_seconds: int = pydantic.Field(15, ge=2, description="Lease duration; renewed every third of it.")
    sync_seconds: float = pydantic.Field(2.0, gt=0, description="How often placed servers are re-read.")
    port_range_start: int = pydantic.Field(18000, ge=1024, le=65000, description="First runtime port.")
    cache_dir: pathlib.Path = pydantic.Field(
        pathlib.Path("~/.cache/llmserver/models").expanduser(), description="Local model cache."
    )
    models_root: pathlib.Path = pydantic.Field(
        pathlib.Path("~/models").expanduser(),
        description="The folder `source.pvc` claims resolve under on this Mac (no PVCs there): claim `models`, path "
        "`qwen` is <models_root>/models/qwen. LLMServers come from every namespace, so an absolute, `~` or `..` "
        "claimName or path is refused (the server fails, saying so in its status); env LLMSERVER_AGENT_MODELS_ROOT.",
    )
    log_dir: pathlib.Path = pydantic.Field(
        pathlib.Path("~/.cache/llmserver/agent-logs").expanduser(), description="Runtime logs."
    )
    ready_timeout: float = pydantic.Field(600.0, gt=0, description="Seconds a runtime may take to load.")
    idle_unload_seconds: float = pydantic.Field(
        0.0, ge=0, description="Stop a model unused this long (0: never); it reloads on its next spec change."
    )
    python: str = pydantic.Field(sys.executable, description="Interpreter that runs llmserver_runtime.")
    kubeconfig: str | None = pydantic.Field(None, description="Kubeconfig; unset uses $KUBECONFIG.")
