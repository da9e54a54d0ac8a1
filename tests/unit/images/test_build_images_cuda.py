"""scripts/build-images.sh and the cuda image: built only when asked for (LLMSERVER_BUILD_CUDA=1 or
`cuda` named), with llama.cpp's CUDA architectures and compile jobs passed as build arguments. Run
against a stand-in `docker` that records its command lines (no daemon, nothing built)."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "build-images.sh"
FAKE_DOCKER = """#!/bin/sh
[ "$1" = info ] && exit 0
echo "$*" >> "$DOCKER_CALLS"
"""


@pytest.fixture()
def build(tmp_path: pathlib.Path):
    """Runs the script with a recording `docker` first on PATH; returns (exit status, recorded builds)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    calls = tmp_path / "calls"

    def run(*targets: str, **options: str) -> tuple[int, list[str], str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMSERVER_IMAGE_", "LLMSERVER_BUILD_",
                                                                          "LLMSERVER_CUDA_"))}
        env.update(PATH=f"{bin_dir}:{env['PATH']}", DOCKER_CALLS=str(calls), LLMSERVER_IMAGE_ENGINE="docker", **options)
        calls.unlink(missing_ok=True)
        done = subprocess.run(["bash", str(SCRIPT), *targets], env=env, capture_output=True, text=True, timeout=120)
        return done.returncode, calls.read_text().splitlines() if calls.exists() else [], done.stderr

    return run


def _targets(calls: list[str]) -> list[str]:
    return [call.split("--target ", 1)[1].split()[0] for call in calls]


def test_cuda_is_not_a_default_target(build) -> None:
    status, calls, stderr = build()
    assert status == 0, stderr
    assert _targets(calls) == ["operator", "cpu"]
    assert not any("CUDA_ARCHITECTURES" in call for call in calls)


def test_llmserver_build_cuda_adds_the_cuda_target(build) -> None:
    status, calls, stderr = build(LLMSERVER_BUILD_CUDA="1")
    assert status == 0, stderr
    assert _targets(calls) == ["operator", "cpu", "cuda"]
    assert "llmserver-runtime-cuda:dev" in calls[2]
    assert "CUDA_ARCHITECTURES=" in stderr  # the architectures built are logged


def test_cuda_architectures_and_jobs_reach_the_build(build) -> None:
    status, calls, stderr = build("cuda", LLMSERVER_CUDA_ARCHITECTURES="90", LLMSERVER_CUDA_BUILD_JOBS="2")
    assert status == 0, stderr
    assert _targets(calls) == ["cuda"]
    assert "--build-arg CUDA_ARCHITECTURES=90 " in calls[0]
    assert "--build-arg CUDA_BUILD_JOBS=2 " in calls[0]
    status, calls, stderr = build("cuda")
    assert status == 0, stderr
    assert "CUDA_ARCHITECTURES" not in calls[0], "without the option the Dockerfile's default applies"
