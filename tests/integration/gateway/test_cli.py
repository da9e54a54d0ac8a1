"""`llmserver-gateway` (and its alias `llmserver-runtime gateway`) refuses bad invocations with one clear line instead of starting."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from testkit import fake_upstreams

pytestmark = pytest.mark.timeout(60)


GATEWAY = (sys.executable, "-m", "llmserver_gateway")
RUNTIME_ALIAS = (sys.executable, "-m", "llmserver_runtime", "gateway")


def _gateway(*args: str, env: dict[str, str] | None = None, entry: tuple[str, ...] = GATEWAY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*entry, *args, "--port", "1"],
                          capture_output=True, text=True, timeout=30, env=fake_upstreams.python_env(**(env or {})))


@pytest.mark.parametrize("entry", [GATEWAY, RUNTIME_ALIAS], ids=["llmserver-gateway", "llmserver-runtime-gateway"])
def test_exactly_one_source_is_required(tmp_path: pathlib.Path, entry: tuple[str, ...]) -> None:
    for args in ((), ("--config", str(tmp_path / "x.yaml"), "--kubernetes")):
        result = _gateway(*args, entry=entry)
        assert result.returncode == 2
        assert "exactly one of --config FILE and --kubernetes" in result.stderr


def test_a_bad_config_names_the_field(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("models:\n  - name: tiny\n    policy: RoundRobin\n")
    result = _gateway("--config", str(path))
    assert result.returncode == 1
    assert "models[0].policy" in result.stderr and "Traceback" not in result.stderr


def test_no_cluster_credentials_is_one_line(tmp_path: pathlib.Path) -> None:
    result = _gateway("--kubernetes", env={"KUBECONFIG": str(tmp_path / "missing")})
    assert result.returncode == 1
    assert "no usable Kubernetes credentials" in result.stderr and "Traceback" not in result.stderr
