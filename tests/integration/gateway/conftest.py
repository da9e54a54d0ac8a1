"""Fixtures for the gateway's integration tests: fake replicas and gateways as real processes."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest
import yaml

from testkit import fake_upstreams

# Short timeouts and a fast config poll, so failure paths and reloads resolve quickly in tests.
GATEWAY_ENV = {
    "LLMSERVER_GATEWAY_CONNECT_TIMEOUT": "2",
    "LLMSERVER_GATEWAY_READ_TIMEOUT": "20",
    "LLMSERVER_GATEWAY_CONFIG_POLL_SECONDS": "0.1",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def start_fakes(workdir: pathlib.Path) -> Iterator[Callable[..., dict[str, fake_upstreams.Replica]]]:
    """Starts fake replicas (one process per call); all are stopped when the module ends."""
    started: list[fake_upstreams.Proc] = []

    def start(*names: str, extra: tuple[str, ...] = ()) -> dict[str, fake_upstreams.Replica]:
        replicas = fake_upstreams.start_fakes(workdir, *names, extra=extra)
        started.append(next(iter(replicas.values())).proc)
        return replicas

    yield start
    fake_upstreams.stop_all(started)


@pytest.fixture(scope="module")
def start_fake(workdir: pathlib.Path) -> Iterator[Callable[..., fake_upstreams.Proc]]:
    """One fake replica in its own process (for tests that kill it)."""
    started: list[fake_upstreams.Proc] = []

    def start(name: str, *extra: str) -> fake_upstreams.Proc:
        proc = fake_upstreams.start_fake(workdir, name, *extra)
        started.append(proc)
        return proc

    yield start
    fake_upstreams.stop_all(started)


@pytest.fixture(scope="module")
def run_gateway(workdir: pathlib.Path) -> Iterator[Callable[..., fake_upstreams.Proc]]:
    """Starts `llmserver-gateway ARGS` (test env added); all are stopped when the module ends."""
    started: list[fake_upstreams.Proc] = []

    def run(*args: str, env: dict[str, str] | None = None, ready: str = "/health") -> fake_upstreams.Proc:
        proc = fake_upstreams.start_gateway(workdir, *args, env={**GATEWAY_ENV, **(env or {})}, ready=ready)
        started.append(proc)
        return proc

    yield run
    fake_upstreams.stop_all(started)


@pytest.fixture(scope="module")
def start_gateway(
    workdir: pathlib.Path, run_gateway: Callable[..., fake_upstreams.Proc]
) -> Callable[..., tuple[fake_upstreams.Proc, pathlib.Path]]:
    """Writes a static config and starts `llmserver-gateway --config` on it."""
    count = [0]

    def start(config: dict, env: dict[str, str] | None = None, *args: str) -> tuple[fake_upstreams.Proc, pathlib.Path]:
        count[0] += 1
        path = workdir / f"gateway-{count[0]}.yaml"
        path.write_text(yaml.safe_dump(config))
        return run_gateway("--config", str(path), *args, env=env), path

    return start
