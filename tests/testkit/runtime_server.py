"""Start `python -m llmserver_runtime serve ...` as a real process on loopback for tests.

    with runtime_server.start(tmp_path, "fake", "unused", "tiny") as server:
        server.client().chat.completions.create(model="tiny", messages=[...])

`start` picks a free port, waits (bounded) for /ready and always kills the process on exit;
a process that dies while starting raises with its log so the failure is readable."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

import openai
from prometheus_client import parser

from testkit import ports

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("backends", "runtime-image", "crds", "operator")


def env(**extra: str) -> dict[str, str]:
    """This environment plus the repo's source folders on PYTHONPATH and `extra`."""
    result = dict(os.environ)
    paths = [str(REPO / d) for d in SOURCE_DIRS]
    if result.get("PYTHONPATH"):
        paths.append(result["PYTHONPATH"])
    result["PYTHONPATH"] = os.pathsep.join(paths)
    result.update(extra)
    return result


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class RuntimeServer:
    """A running `serve` process."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: pathlib.Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, api_key: str = "unused", **kwargs: object) -> openai.OpenAI:
        """The official SDK pointed at this server, without retries (tests see every 429/5xx)."""
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, **kwargs)  # type: ignore[arg-type]

    def async_client(self, api_key: str = "unused", **kwargs: object) -> openai.AsyncOpenAI:
        """Async SDK client, without retries."""
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, **kwargs)  # type: ignore[arg-type]

    def metrics(self) -> dict[str, float]:
        """Current /metrics samples as {'name{label="v",...}': value} (labels sorted)."""
        status, text = get(self.url + "/metrics")
        assert status == 200, text
        samples: dict[str, float] = {}
        for family in parser.text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples

    def wait_ready(self, timeout: float) -> None:
        """Poll /ready until 200; raise with the log if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode} while starting:\n{self.output()}")
            with contextlib.suppress(OSError):
                if get(self.url + "/ready", timeout=1.0)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"serve not ready after {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if needed; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode


def launch(
    tmp: pathlib.Path,
    backend: str,
    model: str,
    name: str,
    *flags: str,
    extra: Sequence[str] = (),
    environment: dict[str, str] | None = None,
) -> RuntimeServer:
    """Start serve without waiting (for tests of start-up failures)."""
    port = ports.free_port()
    log = tmp / f"serve-{name}-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "llmserver_runtime",
        "serve",
        "--backend",
        backend,
        "--model",
        model,
        "--served-model-name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *flags,
    ]
    if extra:
        argv += ["--", *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=environment or env(), cwd=REPO)
    return RuntimeServer(proc, port, log)


@contextlib.contextmanager
def start(
    tmp: pathlib.Path,
    backend: str,
    model: str,
    name: str,
    *flags: str,
    extra: Sequence[str] = (),
    environment: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
) -> Iterator[RuntimeServer]:
    """A ready serve process, stopped on exit."""
    server = launch(tmp, backend, model, name, *flags, extra=extra, environment=environment)
    try:
        server.wait_ready(ready_timeout)
        yield server
    finally:
        server.stop()
