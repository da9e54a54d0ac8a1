"""One server process for a benchmark: started on loopback, waited for, and always stopped."""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import time
import urllib.request
from collections.abc import Iterator

REPO = pathlib.Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def server(argv: list[str], port: int, log: pathlib.Path, ready: str, env: dict[str, str],
           timeout: float = 300.0) -> Iterator[str]:
    """Runs `argv` (output to `log`) until GET `ready` answers 200 within `timeout` s; yields its URL;
    terminates it (then kills it) on exit. A process that dies first raises with its log's tail."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[:3]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url + ready, timeout=1) as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:3]} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
