"""The local set: the servers `llmserver up` serves when it is given no `-f` manifests.

`llmserver add-server --local` writes one LLMServer manifest per server into a folder of the
state dir (`<state dir>/servers/<name>.yaml`), `remove-server --local` deletes it. The files are
ordinary manifests (`llmserver up -f <folder>` reads them too). A running `up` polls the folder
(mtime and size of each file) and applies what changed without a restart: a new server is
started, a changed one replaced, a removed one unloaded (routed away first) and forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import re
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

import yaml

import llmserver_api
from llmserver_cli.hosting import elastic, engine
from llmserver_cli.local import manifests, settings

if TYPE_CHECKING:
    from llmserver_cli.local import supervisor as supervisor_module

POLL_SECONDS = 0.5
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # what metadata.name may be: a safe file name
Stamp = tuple[int, int]  # (mtime_ns, size) of one manifest file


def folder(paths: settings.LocalSettings) -> pathlib.Path:
    """Where the local set's manifests live (under the state dir, so --state-dir isolates it)."""
    return paths.state_dir / "servers"


def file_of(where: pathlib.Path, name: str) -> pathlib.Path:
    """The manifest file of server `name` (metadata.name is a DNS label: a safe file name)."""
    return where / f"{name}.yaml"


def load(where: pathlib.Path) -> list[manifests.Manifest]:
    """Every server of the set, validated (manifests.ManifestError lists the problems)."""
    return manifests.load([where]) if where.is_dir() else []


def conflicts(where: pathlib.Path, server: llmserver_api.LLMServer) -> list[str]:
    """Why `server` cannot join the set: another server of it already serves the same model name
    (a server of the same name is replaced, not a conflict)."""
    name, model = server.metadata.name, server.spec.model
    return [
        f"model {model!r} is already served by {other.name!r} ({other.origin}); "
        f"remove it first with `llmserver remove-server --local {other.name}`"
        for other in readable(where)
        if other.name != name and other.server.spec.model == model
    ]


def readable(where: pathlib.Path) -> list[manifests.Manifest]:
    """The set's servers, each file read alone: a broken file is skipped, not fatal."""
    found: list[manifests.Manifest] = []
    for path in sorted(stamps(where)):
        with contextlib.suppress(manifests.ManifestError):
            found.extend(manifests.load([path]))
    return found


def write(where: pathlib.Path, server: llmserver_api.LLMServer) -> tuple[pathlib.Path, bool]:
    """Writes `server` into the set atomically (a polling `up` never reads half a file); returns
    the file and whether one was there before."""
    where.mkdir(parents=True, exist_ok=True)
    target = file_of(where, server.metadata.name or "")
    existed = target.exists()
    fd, tmp = tempfile.mkstemp(dir=where, prefix=".add-", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(server.to_wire(), handle, sort_keys=False)
    os.replace(tmp, target)
    return target, existed


def remove(where: pathlib.Path, name: str) -> pathlib.Path | None:
    """Deletes server `name` (its metadata.name, or the model it serves) from the set; returns
    the file deleted, or None when the set holds no such server."""
    target: pathlib.Path | None = file_of(where, name) if _DNS_LABEL.fullmatch(name) else None
    if target is None or not target.is_file():
        target = next((m.origin for m in readable(where) if name in (m.name, m.server.spec.model)), None)
    if target is None:
        return None
    target.unlink()
    return target


def stamps(where: pathlib.Path) -> dict[pathlib.Path, Stamp]:
    """(mtime, size) of every manifest file in the set: a change in any means re-read it."""
    found: dict[pathlib.Path, Stamp] = {}
    with contextlib.suppress(OSError):
        for path in where.iterdir():
            if path.suffix in (".yaml", ".yml", ".json") and not path.name.startswith("."):
                with contextlib.suppress(OSError):
                    info = path.stat()
                    found[path] = (info.st_mtime_ns, info.st_size)
    return found


class Follower:
    """Keeps a running `up` serving what the set holds. It manages only the servers that came
    from the set (a --demo server is left alone)."""

    def __init__(self, where: pathlib.Path, report: Callable[[str], None], poll: float = POLL_SECONDS) -> None:
        self.where = where
        self.report = report
        self.poll = poll
        self.seen = stamps(where)
        self.owned: dict[str, llmserver_api.LLMServer] = {}
        self._problems: dict[pathlib.Path, list[str]] = {}

    def adopt(self, loaded: list[manifests.Manifest]) -> None:
        """Records the servers `up` started with from the set (called before it runs)."""
        self.owned = {manifest.name: manifest.server for manifest in loaded}

    async def run(self, sup: supervisor_module.Supervisor) -> None:
        """Polls until cancelled, applying each change to `sup`'s servers."""
        while True:
            await asyncio.sleep(self.poll)
            current = stamps(self.where)
            if current != self.seen:
                self.seen = current
                await self.sync(sup.engine)

    def _wanted(self) -> dict[str, manifests.Manifest]:
        """The set's valid servers by name; each file is read alone, so one bad file (reported
        once) does not stop the others from being served."""
        wanted: dict[str, manifests.Manifest] = {}
        for path in sorted(self.seen):
            try:
                found = manifests.load([path])
            except manifests.ManifestError as error:
                if self._problems.get(path) != error.problems:
                    self.report(f"local set: {path} ignored: " + "; ".join(error.problems))
                self._problems[path] = error.problems
                continue
            self._problems.pop(path, None)
            for manifest in found:
                wanted.setdefault(manifest.name, manifest)
        return wanted

    async def sync(self, hosts: engine.Engine) -> None:
        """Applies the set: removes what left it, replaces what changed, adds what is new."""
        wanted = self._wanted()
        units = hosts.units
        for name in [name for name in self.owned if name not in wanted]:
            await self._drop(hosts, name, "removed from the local set")
        for name, manifest in wanted.items():
            before = self.owned.get(name)
            if before is not None and before.to_wire() == manifest.server.to_wire():
                continue
            if before is None and name in units:
                self.report(f"local set: {name!r} ignored: `up` already serves a server of that name")
                continue
            model = manifest.server.spec.model
            clash = next((u.key for u in units.values() if u.model == model and u.key != name), None)
            if clash is not None:
                self.report(f"local set: {name!r} ignored: model {model!r} is already served by {clash!r}")
                continue
            if before is not None:
                await self._drop(hosts, name, "replaced by its changed manifest")
            self._start(hosts, manifest)

    async def _drop(self, hosts: engine.Engine, name: str, reason: str) -> None:
        self.owned.pop(name, None)
        unit = hosts.units.get(name)
        if unit is None:
            return
        await hosts.unload(unit, reason, wakeable=False)  # routed away before it stops
        await hosts.remove(name)
        self.report(f"local set: {name} {reason}")

    def _start(self, hosts: engine.Engine, manifest: manifests.Manifest) -> None:
        self.owned[manifest.name] = manifest.server
        unit = hosts.add(manifest.name, manifest.server, manifest.origin)
        self.report(f"local set: serving {manifest.name} (model {manifest.server.spec.model})")
        if not elastic.park_at_start(unit):
            hosts.launch(unit)
