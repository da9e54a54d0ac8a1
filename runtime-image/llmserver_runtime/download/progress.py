"""Download progress measured on disk, printed and reported at a bounded rate.

Measuring the files (complete ones plus huggingface-hub's `*.incomplete` partials) rather than
hooking the library's progress bars keeps this independent of huggingface-hub internals and
counts resumed bytes correctly. A background thread samples every `interval` seconds; the
reporter (the LLMServer status patch) is called at most every `report_interval` seconds, and
once more at the end.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from llmserver_api.units import human_bytes
from llmserver_runtime.download import fetch


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Progress at one moment (the shape of LLMServer status.download)."""

    bytes_done: int
    bytes_total: int | None
    files_done: int
    files_total: int | None
    message: str

    def line(self) -> str:
        """Human-readable, with exact numbers for scripts: `progress: 1.5 MiB / 3.0 MiB (50%) ...`."""
        if self.bytes_total:
            amount = f"{human_bytes(self.bytes_done)} / {human_bytes(self.bytes_total)} ({100 * self.bytes_done // self.bytes_total}%)"
        else:
            amount = human_bytes(self.bytes_done)
        files = f"{self.files_done}/{self.files_total if self.files_total is not None else '?'} files"
        return f"progress: {amount}, {files} [bytes={self.bytes_done}/{self.bytes_total or '?'}] {self.message}".rstrip()

    def status_patch(self) -> dict[str, object]:
        """The merge patch for the LLMServer (camelCase, as the API stores it)."""
        download: dict[str, object] = {
            "bytesDone": self.bytes_done,
            "filesDone": self.files_done,
            "message": self.message,
        }
        if self.bytes_total is not None:
            download["bytesTotal"] = self.bytes_total
        if self.files_total is not None:
            download["filesTotal"] = self.files_total
        return {"status": {"download": download}}


def measure(request: fetch.Request, plan: fetch.Plan, message: str) -> Snapshot:
    """Bytes of complete files plus partial files, and the count of complete files."""
    done_files = 0
    done_bytes = 0
    for name, size in plan.files.items():
        path = request.target / name
        try:
            actual = path.stat().st_size if path.is_file() else None
        except OSError:
            actual = None
        if actual is not None and (size is None or actual == size):
            done_files += 1
            done_bytes += actual
    for partial in fetch.partial_dir(request).rglob("*.incomplete"):
        try:
            done_bytes += partial.stat().st_size
        except OSError:  # finished and renamed between listing and stat
            pass
    total = plan.total_bytes
    if total is not None:
        done_bytes = min(done_bytes, total)
    return Snapshot(done_bytes, total, done_files, len(plan.files), message)


class Monitor:
    """Samples progress in a thread while the download runs; prints changes, reports throttled."""

    def __init__(
        self,
        sample: Callable[[], Snapshot],
        emit: Callable[[str], None],
        report: Callable[[Snapshot], None] | None,
        *,
        interval: float = 1.0,
        report_interval: float = 5.0,
    ) -> None:
        self._sample = sample
        self._emit = emit
        self._report = report
        self._interval = interval
        self._report_interval = report_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-progress", daemon=True)
        self._last_line = ""
        self._last_report = float("-inf")

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.tick(final=False)

    def tick(self, final: bool, snapshot: Snapshot | None = None) -> None:
        """One sample: print if it changed; report if due (always when `final`)."""
        current = snapshot or self._sample()
        line = current.line()
        if line != self._last_line:
            self._emit(line)
            self._last_line = line
        now = time.monotonic()
        if self._report is not None and (final or now - self._last_report >= self._report_interval):
            self._last_report = now
            self._report(current)
