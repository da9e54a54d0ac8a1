"""The kind end-to-end run (tests/e2e/run-kind-e2e.sh) as a test.

It needs a Docker daemon, kind, kubectl and helm and reaches the Hugging Face Hub for a small GGUF,
so it runs only where those exist; elsewhere it is skipped with the reason (CI here has no Docker
daemon). The script builds the images, creates the cluster, installs the chart, applies a tiny
LLMServer, waits for Ready, calls the gateway with the openai SDK and tears the cluster down.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).with_name("run-kind-e2e.sh")
TOOLS_BIN = pathlib.Path.home() / ".cache" / "llmserver" / "bin"


def _missing() -> str | None:
    """Why the e2e cannot run here, or None when it can (the Docker daemon is checked first)."""
    path = f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    if shutil.which("docker", path=path) is None:
        return "no Docker daemon: the docker CLI is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "no Docker daemon: `docker info` timed out"
    if info.returncode != 0:
        return "no Docker daemon: `docker info` cannot reach one (containers cannot run on this machine)"
    for tool in ("kind", "kubectl", "helm"):
        if shutil.which(tool, path=path) is None:
            return f"{tool} is not installed"
    return None


@pytest.mark.e2e
@pytest.mark.timeout(3600)
def test_kind_end_to_end() -> None:
    reason = _missing()
    if reason is not None:
        pytest.skip(f"kind e2e skipped: {reason}")
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, timeout=3500, check=False,
                            capture_output=True, text=True)
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, tail
    assert "E2E OK" in result.stdout, tail
