"""Start-up and shutdown of `serve`: alive before ready, load failures exit non-zero with a clear
log line, bad arguments exit 2, SIGTERM shuts down gracefully (uvicorn then re-raises the signal,
so the exit status is the signal's, as for any well-behaved Unix process)."""

from __future__ import annotations

import pathlib
import signal
import time

import httpx
import pytest
from testkit import runtime_server

pytestmark = pytest.mark.timeout(60)


def _exit_code(server: runtime_server.RuntimeServer, timeout: float = 30.0) -> int:
    try:
        return server.proc.wait(timeout)
    finally:
        server.stop()


def test_alive_before_ready_then_ready_then_clean_exit(tmp_path: pathlib.Path) -> None:
    server = runtime_server.launch(tmp_path, "fake", "unused", "tiny", extra=["load_delay=2"])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if runtime_server.get(server.url + "/health", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.proc.poll() is None, server.output()
            time.sleep(0.05)
        assert runtime_server.get(server.url + "/ready")[0] == 503
        loading = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "a"}, timeout=5)
        assert loading.status_code == 503 and loading.headers["retry-after"] == "5"
        assert loading.json()["error"]["code"] == "service_unavailable"
        server.wait_ready(20)
        assert runtime_server.get(server.url + "/ready")[0] == 200
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM)
    assert "model tiny ready" in server.output()
    assert "Application shutdown complete" in server.output()


def test_load_failure_is_logged_and_exits_1(tmp_path: pathlib.Path) -> None:
    server = runtime_server.launch(tmp_path, "fake", "unused", "tiny", extra=["fail_load=true"])
    assert _exit_code(server) == 1
    assert (
        "loading model tiny (fake backend) failed: BackendError: fake backend asked to fail its load" in server.output()
    )


def test_missing_model_file_exits_1(tmp_path: pathlib.Path) -> None:
    server = runtime_server.launch(tmp_path, "llama-cpp", str(tmp_path / "absent.gguf"), "tiny")
    assert _exit_code(server) == 1
    assert "does not exist" in server.output()


@pytest.mark.parametrize(
    ("backend", "extra", "message"),
    [
        ("nonsense", [], "unknown backend 'nonsense'"),
        ("fake", ["bogus=1"], "unknown fake backend options: bogus"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: pathlib.Path, backend: str, extra: list[str], message: str) -> None:
    server = runtime_server.launch(tmp_path, backend, "unused", "tiny", extra=extra)
    assert _exit_code(server) == 2
    assert message in server.output()


def test_invalid_setting_names_the_flag(tmp_path: pathlib.Path) -> None:
    server = runtime_server.launch(tmp_path, "fake", "unused", "tiny", "--capabilities", "Telepathy")
    assert _exit_code(server) == 2
    assert "--capabilities" in server.output() and "Telepathy" in server.output()
