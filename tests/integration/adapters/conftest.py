"""Fixtures for the adapter acceptance tests (issue 21): tiny LoRA adapters written by the real
`tiny-model` command, and real gateway processes (static config or --kubernetes)."""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import yaml

from testkit import fake_upstreams, lora_adapters, models, runtime_server

# Fast probes and config polls, so the gateway learns which replica holds which adapter quickly.
GATEWAY_ENV = {
    "LLMSERVER_GATEWAY_CONNECT_TIMEOUT": "2",
    "LLMSERVER_GATEWAY_READ_TIMEOUT": "120",
    "LLMSERVER_GATEWAY_CONFIG_POLL_SECONDS": "0.1",
    "LLMSERVER_GATEWAY_ADAPTER_PROBE_SECONDS": "0.2",
}


def gguf_lora(base: str, out: pathlib.Path, seed: int) -> str:
    """A GGUF LoRA file for the GGUF at `base` (`tiny-model --kind gguf-lora`), written to `out`."""
    command = [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", "gguf-lora", "--base", base,
               "--output", str(out), "--seed", str(seed)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            env=runtime_server.env())
    if result.returncode != 0:
        raise RuntimeError(f"tiny-model --kind gguf-lora failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout.strip().splitlines()[-1]


def hf_lora(base: str, out: pathlib.Path, seed: int) -> str:
    """A peft LoRA folder for the hf-causal model at `base` (`tiny-model --kind hf-lora`)."""
    return lora_adapters.hf_lora(base, out, seed)


LoraWriter = Callable[[str, str, pathlib.Path, int], str]


@pytest.fixture(scope="session")
def write_lora() -> LoraWriter:
    """`write_lora(kind, base, out, seed)`: a tiny adapter of `kind` ("gguf-lora" or "hf-lora") for
    the model at `base`, written by the real `tiny-model` command; returns its path."""

    def write(kind: str, base: str, out: pathlib.Path, seed: int) -> str:
        return (gguf_lora if kind == "gguf-lora" else hf_lora)(base, out, seed)

    return write


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("adapters")


@pytest.fixture(scope="module")
def run_gateway(workdir: pathlib.Path) -> Iterator[Callable[..., fake_upstreams.Proc]]:
    """Starts `llmserver-gateway ARGS` (fast probes); all are stopped when the module ends."""
    started: list[fake_upstreams.Proc] = []

    def run(*args: str, env: dict[str, str] | None = None, ready: str = "/health") -> fake_upstreams.Proc:
        proc = fake_upstreams.start_gateway(workdir, *args, env={**GATEWAY_ENV, **(env or {})}, ready=ready)
        started.append(proc)
        return proc

    yield run
    fake_upstreams.stop_all(started)


@pytest.fixture(scope="module")
def static_gateway(
    workdir: pathlib.Path, run_gateway: Callable[..., fake_upstreams.Proc]
) -> Callable[[dict[str, object]], fake_upstreams.Proc]:
    """Writes a static config (docs/contracts.md "Gateway static config") and serves it."""

    def start(config: dict[str, object]) -> fake_upstreams.Proc:
        path = workdir / f"gateway-{len(list(workdir.glob('gateway-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(config))
        return run_gateway("--config", str(path))

    return start


@pytest.fixture(scope="session")
def tiny_gguf() -> str:
    return models.tiny_model_path("gguf")


@pytest.fixture(scope="session")
def tiny_hf_causal() -> str:
    return models.tiny_model_path("hf-causal")


def _mount_namespaces_work(probe_dir: pathlib.Path) -> bool:
    """Whether a process can run with `probe_dir` bind-mounted at /models (root and unshare)."""
    (probe_dir / "probe").write_text("ok")
    command = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /models && test -f /models/probe', str(probe_dir)]
    try:
        return subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="module")
def models_mountpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bool]:
    """True when the kubelet simulator can run pods with a real /models (its `mount_models`): the
    empty mountpoint /models is made here when missing and removed again afterwards."""
    made = False
    mountpoint = pathlib.Path("/models")
    try:
        if not mountpoint.exists():
            mountpoint.mkdir()
            made = True
    except OSError:
        yield False
        return
    try:
        yield mountpoint.is_dir() and _mount_namespaces_work(tmp_path_factory.mktemp("mount-probe"))
    finally:
        if made:
            with contextlib.suppress(OSError):  # another run may still use it; it is empty either way
                mountpoint.rmdir()
