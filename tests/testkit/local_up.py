"""Run `llmserver up` as a real subprocess for tests, and check it leaves nothing behind.

    with local_up.Up(tmp_path, "--demo") as up:
        up.wait_phase("tiny", "Ready")
        up.client().chat.completions.create(model="tiny", messages=[...])
        code, leftovers = up.interrupt()      # SIGINT, as Ctrl-C would; pids still alive after

Every wait is bounded; on exit the process tree is killed by pid whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import openai

from testkit import ports, runtime_server

LAUNCH = "import sys; from llmserver_cli.cli import main; sys.exit(main())"


def llmserver(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs one `llmserver ...` command to completion (stdout and stderr captured)."""
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, timeout=timeout,
        env=env or runtime_server.env(), check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children of children included), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Up:
    """One `llmserver up` process with its own state and cache folders under `tmp`."""

    def __init__(self, tmp: pathlib.Path, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or ports.free_port()
        self.state_dir = tmp / "state"
        self.cache_dir = tmp / "cache"
        self.log = tmp / f"up-{self.port}.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = [*args, "--port", str(self.port), "--state-dir", str(self.state_dir),
                     "--cache-dir", str(self.cache_dir), "--no-live"]  # fmt: skip
        self.env = runtime_server.env(**(env or {}))
        self._log = self.log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "up", *self.args], stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
        )  # fmt: skip
        self._seen: set[int] = set()

    def __enter__(self) -> Up:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def output(self) -> str:
        """What `llmserver up` printed so far."""
        self._log.flush()
        return self.log.read_text(errors="replace")

    def state(self) -> dict[str, Any] | None:
        """The state file, or None before it exists."""
        with contextlib.suppress(OSError, ValueError):
            return json.loads((self.state_dir / "state.json").read_text())
        return None

    def server(self, name: str) -> dict[str, Any] | None:
        """One server's entry of the state file."""
        current = self.state() or {}
        return next((s for s in current.get("servers", []) if s["name"] == name), None)

    def wait_phase(self, name: str, phase: str, timeout: float = 180.0) -> dict[str, Any]:
        """Waits until server `name` shows `phase` (fails early if `llmserver up` exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._remember_children()
            if self.popen.poll() is not None:
                raise AssertionError(f"llmserver up exited with {self.popen.returncode}:\n{self.output()[-4000:]}")
            server = self.server(name)
            if server is not None and server["phase"] == phase:
                return server
            time.sleep(0.2)
        raise AssertionError(f"{name} not {phase} after {timeout}s: {self.server(name)}\n{self.output()[-4000:]}")

    def status_of(self, model: str) -> int:
        """The HTTP status of one small chat request for `model` through the gateway (0: no answer)."""
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode()
        request = urllib.request.Request(f"{self.base_url}/v1/chat/completions", data=body,
                                         headers={"content-type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (urllib.error.URLError, OSError):
            return 0

    def wait_status(self, model: str, wanted: int, timeout: float = 30.0) -> None:
        """Waits until a request for `model` gets `wanted` (the gateway re-reads its config ~2x/s)."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.status_of(model)
            if seen == wanted:
                return
            time.sleep(0.2)
        raise AssertionError(f"{model}: HTTP {seen}, wanted {wanted}, after {timeout}s:\n{self.output()[-4000:]}")

    def wait_routed(self, model: str, timeout: float = 30.0) -> None:
        """Waits until the gateway routes `model` to a runtime (answers 200)."""
        self.wait_status(model, 200, timeout)

    def client(self) -> openai.OpenAI:
        """The official SDK pointed at the gateway (no retries: a test sees every answer)."""
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0, timeout=120)

    def _remember_children(self) -> None:
        if self.popen.poll() is None:
            self._seen |= descendants(self.popen.pid)

    def interrupt(self, timeout: float = 60.0) -> tuple[int, set[int]]:
        """SIGINT (Ctrl-C) and wait; returns the exit status and any process of its tree still alive."""
        self._remember_children()
        self.popen.send_signal(signal.SIGINT)
        code = self.popen.wait(timeout)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(pid) for pid in self._seen):
            time.sleep(0.1)  # the kernel may need a moment to reap what was just killed
        return code, {pid for pid in self._seen if alive(pid)}

    def kill(self) -> None:
        """Ends everything this test started, by pid (used on every exit path)."""
        self._remember_children()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        for pid in self._seen:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._log.close()


