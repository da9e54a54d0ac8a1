"""A real Prometheus server (Debian's `prometheus` binary) on loopback, for tests that scrape.

    with prometheus.start(tmp_path, {"runtime": [url1], "gateway": [url2]}) as prom:
        prom.wait_for_targets()
        prom.query('llmserver_completion_tokens_total{model="tiny"}')   # -> list of (labels, value)

A static scrape config with a short interval and tmp storage; the server is always stopped (by
pid) on exit. The binary comes from scripts/setup-tools.sh; missing, it FAILS with that hint.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import yaml

from testkit import ports

T = TypeVar("T")
SCRAPE_SECONDS = 1


def binary(name: str = "prometheus") -> str:
    """Path of prometheus/promtool, or an AssertionError saying how to install it."""
    found = shutil.which(name)
    assert found, f"{name} is not installed: run `bash scripts/setup-tools.sh` (Debian package prometheus)"
    return found


class Prometheus:
    """A running server and its HTTP API."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: pathlib.Path, jobs: dict[str, list[str]]) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.jobs = jobs

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a success, else an AssertionError with the error."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) per series."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with their health."""
        return self.api("targets")["activeTargets"]

    def wait_for_targets(self, timeout: float = 30.0) -> None:
        """Until every configured target was scraped successfully at least once."""
        wanted = sum(len(urls) for urls in self.jobs.values())

        def all_up() -> bool:
            targets = self.targets()
            return len(targets) == wanted and all(target["health"] == "up" for target in targets)

        self.wait_until(all_up, timeout, "every target scraped")

    def wait_until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Polls `check` (bounded in time) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self._alive()
            last = check()
            if last:
                return last
            time.sleep(0.25)
        raise AssertionError(f"Prometheus: {what} not reached in {timeout}s (last: {last!r})\n{self.output()[-3000:]}")

    def output(self) -> str:
        """The server's log."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; reaps the process."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def config(jobs: dict[str, list[str]]) -> dict[str, Any]:
    """A static scrape config: one job per name, targets given as base URLs (http://host:port)."""
    scrape = []
    for job, urls in jobs.items():
        targets = [urllib.parse.urlsplit(url).netloc for url in urls]
        scrape.append({"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": targets}]})
    return {"global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": f"{SCRAPE_SECONDS}s",
                       "evaluation_interval": f"{SCRAPE_SECONDS}s"},
            "scrape_configs": scrape}


@contextlib.contextmanager
def start(tmp: pathlib.Path, jobs: dict[str, list[str]], ready_timeout: float = 60.0) -> Iterator[Prometheus]:
    """A ready Prometheus scraping `jobs`; stopped on exit."""
    tmp.mkdir(parents=True, exist_ok=True)
    config_file = tmp / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config(jobs)))
    check = subprocess.run([binary("promtool"), "check", "config", str(config_file)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    port = ports.free_port()
    log = tmp / "prometheus.log"
    argv = [binary(), f"--config.file={config_file}", f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
            "--log.level=warn"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    server = Prometheus(proc, port, log, jobs)
    try:
        def ready() -> bool:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(server.url + "/-/ready", timeout=2) as reply:
                    return reply.status == 200
            return False

        server.wait_until(ready, ready_timeout, "/-/ready")
        yield server
    finally:
        server.stop()
