"""Runs a pod's container command as a local process, for the kubelet simulator's process mode.

The container's command line is kept, with three rewrites so it runs on this machine:
`llmserver-runtime` becomes this interpreter's `-m llmserver_runtime`, `--port`/`--host` point at a
free loopback port, and paths under /models (and /tmp) point into local directories. Env comes from
the container (values, and Secret/ConfigMap keys read from the emulator) on top of this process's.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

Manifest = dict[str, Any]


def _map_path(value: str, mapping: dict[str, str]) -> str:
    for prefix, local in mapping.items():
        if value == prefix or value.startswith(prefix + "/"):
            return local + value[len(prefix):]
    return value


def command_line(container: Manifest, port: int, mapping: dict[str, str]) -> list[str]:
    """The container's command + args rewritten to run locally on `port`."""
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if argv and argv[0] == "llmserver-runtime":
        argv = [sys.executable, "-m", "llmserver_runtime", *argv[1:]]
    out: list[str] = []
    skip = False
    passthrough = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--":
            passthrough = True
        if not passthrough and arg in ("--port", "--host") and index + 1 < len(argv):
            out += [arg, str(port) if arg == "--port" else "127.0.0.1"]
            skip = True
            continue
        # argv[0] is this interpreter (or the container's binary): never a path inside the container
        out.append(arg if index == 0 else _map_path(arg, mapping))
    return out


def with_models_mounted(argv: list[str], models_dir: str) -> list[str]:
    """`argv` run in a new mount namespace (unshare, root only) where `models_dir` is bind-mounted
    at /models: the mount lives and dies with the process, the host's /models (an empty mountpoint
    the caller provides) stays as it was."""
    return ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /models && exec "$@"', models_dir, *argv]


def environment(container: Manifest, lookup: Callable[[str, str, str], str | None], mapping: dict[str, str]) -> dict[str, str]:
    """This process's env plus the container's; `lookup(kind, name, key)` resolves Secret/ConfigMap keys."""
    env = dict(os.environ)
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = _map_path(str(item["value"]), mapping)
            continue
        source = item.get("valueFrom") or {}
        for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            ref = source.get(field)
            if ref:
                value = lookup(kind, ref["name"], ref["key"])
                if value is not None:
                    env[item["name"]] = value
    return env


def secret_value(obj: Manifest | None, key: str) -> str | None:
    """A key of a Secret (base64 `data` or `stringData`) or ConfigMap."""
    if obj is None:
        return None
    if key in (obj.get("stringData") or {}):
        return str(obj["stringData"][key])
    raw = (obj.get("data") or {}).get(key)
    if raw is None:
        return None
    return base64.b64decode(raw).decode() if obj.get("kind") == "Secret" else str(raw)


class LocalProcess:
    """One started container; `on_ready`/`on_exit` are called from its probe thread."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, workdir: str,
                 on_ready: Callable[[], None], on_exit: Callable[[int, str], None], ready_timeout: float) -> None:
        self.port = port
        self.log_path = pathlib.Path(workdir) / "container.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(argv, env=env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._probe, args=(on_ready, on_exit, ready_timeout), daemon=True,
                                        name=f"probe-{port}")
        self._thread.start()

    def log_tail(self, limit: int = 2000) -> str:
        """The end of the container's output (the termination message on failure)."""
        try:
            return self.log_path.read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return ""

    def _probe(self, on_ready: Callable[[], None], on_exit: Callable[[int, str], None], timeout: float) -> None:
        """Readiness probe on /ready every 0.25 s (bounded), then watches for the process to exit."""
        deadline = time.monotonic() + timeout
        while not self._stopped.is_set() and self.process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as response:
                    if response.status == 200:
                        on_ready()
                        break
            except (urllib.error.URLError, OSError):
                pass
            self._stopped.wait(0.25)
        code = self.process.wait() if not self._stopped.is_set() else None
        if code is not None and not self._stopped.is_set():
            on_exit(code, self.log_tail())

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds."""
        self._stopped.set()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()


def workdir(prefix: str) -> str:
    """A fresh directory standing in for a pod's /tmp."""
    return tempfile.mkdtemp(prefix=prefix)
