"""status.adapters of a Mac-placed LLMServer, computed by the Mac's agent from its hosted unit.

In a cluster the operator writes status.adapters from what it sees of Jobs and pods; on a Mac only
the agent sees the downloads and the runtime, so it writes the same entries itself (`name`,
`phase` Pending|Downloading|Ready|Failed, `readyReplicas`, `message`, `download`) through the
status patch the operator grants it for that one server. A Mac runs one replica at most:
`readyReplicas` is 1 while the runtime is Ready with the adapter passed to it, else 0.

Failed: the adapter's download failed (the downloader's message; the model starts without it), or
the runtime refused it at load (its output names the adapter's folder: mlx takes adapters at load
and exits on one it cannot apply, so the server is Failed too until the adapter is fixed or removed).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import llmserver_api
from llmserver_cli.hosting import hosted, sources

Entry = dict[str, Any]
MESSAGE_LIMIT = 1000  # status messages stay readable in `kubectl get -o yaml`


def _download(progress: tuple[int, int | None] | None, finished: bool) -> dict[str, Any] | None:
    if progress is None:
        return None
    done, total = progress
    out: dict[str, Any] = {"bytesDone": done, "message": "complete" if finished else "downloading"}
    if total is not None:
        out["bytesTotal"] = total
    return out


def _refused_by_runtime(unit: hosted.Hosted, path: pathlib.Path) -> bool:
    """True when the failed runtime's last words name this adapter's folder, or refuse `--adapter`
    as a whole (an engine without adapters, e.g. mlx-vlm when `backend: auto` resolved to it)."""
    if unit.phase != "Failed" or not unit.message.startswith("runtime exited"):
        return False
    if "(--adapter)" in unit.message:
        return True
    return any(str(candidate) in unit.message for candidate in {path, pathlib.Path(os.path.realpath(path))})


def _state(server: llmserver_api.LLMServer, unit: hosted.Hosted | None, name: str, path: pathlib.Path,
           node: str) -> tuple[str, int, str]:
    """(phase, readyReplicas, message) of one adapter."""
    where = f"the runtime on AppleNode {node!r}"
    if unit is not None and name in unit.adapter_failures:
        return "Failed", 0, unit.adapter_failures[name]
    if server.spec.replicas == 0 or unit is None:
        return "Pending", 0, "spec.replicas is 0: no replica serves it"
    if unit.adapter == name:
        return "Downloading", 0, f"downloading on AppleNode {node!r}"
    if _refused_by_runtime(unit, path):
        return "Failed", 0, unit.message
    phase = unit.phase
    if phase == "Ready":
        return "Ready", 1, f"served by {where}"
    if phase in ("Pending", "Downloading"):
        return "Pending", 0, f"waiting for the downloads on AppleNode {node!r}"
    if phase == "Starting":
        return "Pending", 0, f"downloaded; {where} is loading it"
    if phase == "Failed":
        return "Pending", 0, f"{where} failed: {unit.message}"
    return "Pending", 0, f"{where} is unloaded: {unit.message}"


def entries(server: llmserver_api.LLMServer, unit: hosted.Hosted | None, node: str,
            cache_dir: pathlib.Path) -> list[Entry]:
    """One entry per spec.adapters item, in spec order (the cluster's shape and phases)."""
    out: list[Entry] = []
    for adapter in server.spec.adapters:
        path = sources.adapter_path(adapter, unit.origin, cache_dir) if unit is not None else pathlib.Path()
        phase, ready, message = _state(server, unit, adapter.name, path, node)
        entry: Entry = {"name": adapter.name, "phase": phase, "readyReplicas": ready,
                        "message": message[:MESSAGE_LIMIT]}
        progress = unit.adapter_progress.get(adapter.name) if unit is not None else None
        download = _download(progress, finished=unit is not None and unit.adapter != adapter.name)
        if download is not None:
            entry["download"] = download
        out.append(entry)
    return out


def patch(wanted: list[Entry], current: Any) -> dict[str, Any] | None:
    """The status patch that makes status.adapters `wanted` (merge patch: the list is replaced
    whole); None when it already is (absent counts as empty)."""
    held = [] if current is None else current
    if held == wanted:
        return None
    return {"adapters": wanted}


def server_adapters(raw: Mapping[str, Any]) -> Any:
    """status.adapters as the API server holds it (None when absent)."""
    return (raw.get("status") or {}).get("adapters")
