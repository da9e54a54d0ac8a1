"""A child process the host owns (`llmserver up` or `llmserver agent`): its own session (so a
terminal Ctrl-C reaches only the host, which then stops children in order), output in a log file,
stopped as a whole process group, and killed by the kernel if the host itself dies (Linux
PR_SET_PDEATHSIG)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import os
import pathlib
import signal
import sys
from collections.abc import Callable
from typing import BinaryIO


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the parent thread exits (no orphans)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ManagedProcess:
    """One child: started once, stopped with SIGTERM then SIGKILL to its whole process group."""

    def __init__(
        self,
        argv: list[str],
        log_path: pathlib.Path,
        env: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self._on_line = on_line
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=40)

    @property
    def pid(self) -> int | None:
        """The child's pid once started."""
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        """None while running (or before start)."""
        return self._process.returncode if self._process else None

    async def start(self) -> None:
        """Starts the child; output goes to the log (and to `on_line`, line by line, if given)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if self._on_line else log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if not self._on_line:
                log.close()
        if self._on_line:
            self._reader = asyncio.create_task(self._pump(log))

    async def _pump(self, log: BinaryIO) -> None:
        assert self._process is not None and self._process.stdout is not None
        try:
            async for raw in self._process.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip()
                self._tail.append(line)
                if self._on_line:
                    self._on_line(line)
        finally:
            log.close()

    async def wait(self) -> int:
        """Waits for the child to exit; returns its exit status."""
        assert self._process is not None
        code = await self._process.wait()
        if self._reader:
            await asyncio.wait({self._reader}, timeout=5)
        return code

    def tail(self, lines: int = 5) -> str:
        """The last output lines, for an error message when the child fails."""
        if self._on_line:
            recent = list(self._tail)
        else:
            try:
                with self.log_path.open("rb") as handle:
                    handle.seek(max(0, handle.seek(0, os.SEEK_END) - 8192))
                    recent = handle.read().decode(errors="replace").splitlines()
            except OSError:
                recent = []
        return "\n".join([line for line in recent if line.strip()][-lines:])

    def _signal_group(self, signum: int) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds; idempotent."""
        if self._process is None:
            return
        if self._process.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), grace)
            except asyncio.TimeoutError:
                self._signal_group(signal.SIGKILL)
                await self._process.wait()
        # grandchildren (an engine's workers) share the group: make sure none outlive the leader
        self._signal_group(signal.SIGKILL)
        if self._reader:
            await asyncio.wait({self._reader}, timeout=5)
