"""The state file a running `llmserver up` keeps current, so that other `llmserver` commands
(`list-loaded --local`, `load-model/unload-model --local`) can see and steer it.

It holds a per-run control token, so it is written owner-only (0600).
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import pydantic

from llmserver_cli.hosting import elastic, hosted


class ServerState(pydantic.BaseModel):
    """One LLMServer as local mode runs it."""

    name: str
    model: str
    mode: str
    backend: str
    capabilities: list[str] = []
    phase: str = "Pending"
    message: str = ""
    port: int | None = None
    pid: int | None = None
    upstream: str | None = None
    download_bytes: int | None = None
    download_total: int | None = None
    last_used: float | None = None
    min_replicas: int | None = None  # spec.autoscaling's bounds; None: not autoscaled
    max_replicas: int | None = None
    wakeable: bool = False  # unloaded by idle time or eviction: the next request loads it

    @property
    def cold(self) -> bool:
        """An autoscaled model at zero replicas that its next request loads."""
        return self.min_replicas is not None and self.wakeable and self.phase == "Unloaded"

    @property
    def ready(self) -> bool:
        """True when the gateway can route to it now."""
        return self.phase == "Ready"


def server_state(unit: hosted.Hosted) -> ServerState:
    """One row of the state file (what `list-loaded --local` shows)."""
    spec = unit.server.spec
    block = elastic.autoscaling(unit.server)
    return ServerState(
        name=unit.key,
        model=spec.model,
        mode=spec.mode.value,
        backend=spec.backend.value if unit.self_hosted else "-",
        capabilities=[capability.value for capability in spec.capabilities or []],
        upstream=spec.proxy.url if spec.proxy else None,
        phase=unit.phase,
        message=unit.message,
        port=unit.port,
        pid=unit.pid,
        download_bytes=unit.download_bytes,
        download_total=unit.download_total,
        last_used=unit.last_used,
        min_replicas=block.min_replicas if block else None,
        max_replicas=block.max_replicas if block else None,
        wakeable=unit.wakeable,
    )


class LocalState(pydantic.BaseModel):
    """Everything `llmserver up` publishes about itself."""

    pid: int
    gateway_url: str
    control_url: str | None = None
    token: str = ""
    servers: list[ServerState] = []

    def server(self, name: str) -> ServerState | None:
        """The server named `name` (metadata.name), or one serving model `name`."""
        for server in self.servers:
            if server.name == name:
                return server
        return next((server for server in self.servers if server.model == name), None)


def write(path: pathlib.Path, state: LocalState) -> None:
    """Atomic, owner-only write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(state.model_dump_json(indent=2))
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """True if `pid` is a live process (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (OSError, IndexError):
        return True


def read(path: pathlib.Path) -> LocalState | None:
    """The state of the running `llmserver up`, or None when none runs (a stale file is ignored)."""
    try:
        state = LocalState.model_validate_json(path.read_text())
    except (OSError, pydantic.ValidationError):
        return None
    return state if pid_alive(state.pid) else None


def remove(path: pathlib.Path, pid: int) -> None:
    """Removes the state file if it is still ours (another `up` may have replaced it)."""
    try:
        if LocalState.model_validate_json(path.read_text()).pid == pid:
            path.unlink()
    except (OSError, pydantic.ValidationError):
        pass
