"""Which model-cache paths a running `llmserver up` uses, so `llmserver clear-cache` never
deletes a model (or adapter) that one of its servers runs, downloads or may wake up with.

`up` rewrites `<state dir>/cache-in-use.json` (its pid, the cache dir, the paths) whenever the set
of its servers changes; clear-cache trusts it only while that pid is the live `up` of the state file.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import tempfile
from typing import TYPE_CHECKING

import llmserver_api
from llmserver_cli.hosting import sources

if TYPE_CHECKING:
    from llmserver_cli.local import supervisor as supervisor_module

POLL_SECONDS = 0.5


def file_of(state_dir: pathlib.Path) -> pathlib.Path:
    """The in-use file of the `up` that keeps its state in `state_dir`."""
    return state_dir / "cache-in-use.json"


def used_by(server: llmserver_api.LLMServer, origin: sources.Origin, cache_dir: pathlib.Path) -> list[pathlib.Path]:
    """The model path (wherever it is) and every adapter's cached path of one server."""
    used: list[pathlib.Path] = []
    if server.spec.source is not None:
        used.append(sources.model_path(server, origin, cache_dir))
    used.extend(sources.adapter_path(adapter, origin, cache_dir) for adapter in server.spec.adapters)
    return used


def in_use(sup: supervisor_module.Supervisor) -> dict[str, list[str]]:
    """Server name -> the paths it uses, for every server of this `up`."""
    cache_dir = sup.paths.cache_dir
    return {
        key: sorted(str(path) for path in used_by(unit.server, unit.origin, cache_dir))
        for key, unit in sorted(sup.engine.units.items())
    }


def write(path: pathlib.Path, pid: int, cache_dir: pathlib.Path, used: dict[str, list[str]]) -> None:
    """Atomic write (clear-cache never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".in-use-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump({"pid": pid, "cacheDir": str(cache_dir), "servers": used}, handle, indent=2)
    os.replace(tmp, path)


def read(path: pathlib.Path, pid: int) -> dict[str, list[str]] | None:
    """What the `up` with `pid` published, or None when it has not (yet) or the file is another's."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("pid") != pid or not isinstance(data.get("servers"), dict):
        return None
    return {str(name): [str(p) for p in paths] for name, paths in data["servers"].items()}


async def publish(sup: supervisor_module.Supervisor) -> None:
    """Keeps the in-use file current until cancelled (then removes it)."""
    target = file_of(sup.paths.state_dir)
    last: dict[str, list[str]] | None = None
    try:
        while True:
            current = in_use(sup)
            if current != last:
                write(target, os.getpid(), sup.paths.cache_dir, current)
                last = current
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if read(target, os.getpid()) is not None:
            target.unlink(missing_ok=True)
