"""scripts/build-images.sh's publishing options (LLMSERVER_IMAGE_REGISTRY, _PLATFORMS, _PUSH), which
the release workflow uses: run against a stand-in `docker` on PATH that records its command lines,
so the exact build commands are checked without a daemon. The default (no option) must stay a plain
`docker build` of local names, as before the options existed."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "build-images.sh"
FAKE_DOCKER = """#!/bin/sh
# Stands in for docker: `docker info` answers, every other call is recorded and succeeds.
[ "$1" = info ] && exit 0
echo "$*" >> "$DOCKER_CALLS"
"""


@dataclasses.dataclass
class Run:
    returncode: int
    stderr: str
    calls: list[str]


@pytest.fixture()
def build(tmp_path: pathlib.Path):
    """Runs the script with a recording `docker` first on PATH and the given env options."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    calls = tmp_path / "calls"

    def run(*targets: str, **options: str) -> Run:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSERVER_IMAGE_")}
        env.update(PATH=f"{bin_dir}:{env['PATH']}", DOCKER_CALLS=str(calls), LLMSERVER_IMAGE_ENGINE="docker")
        env.update(options)
        calls.unlink(missing_ok=True)
        done = subprocess.run(
            ["bash", str(SCRIPT), *targets], env=env, check=False, capture_output=True, text=True, timeout=120
        )
        recorded = calls.read_text().splitlines() if calls.exists() else []
        return Run(done.returncode, done.stderr, recorded)

    return run


def _tags(call: str) -> list[str]:
    words = call.split()
    return [words[i + 1] for i, word in enumerate(words) if word == "-t"]


def test_default_is_a_plain_local_docker_build(build) -> None:
    run = build("operator", "cpu")
    assert run.returncode == 0, run.stderr
    assert len(run.calls) == 2
    for call, target, name in zip(run.calls, ("operator", "cpu"), ("llmserver-operator:dev", "llmserver-runtime:dev")):
        assert call.startswith("build "), call  # not buildx
        assert f"--target {target} " in call
        assert _tags(call) == [name]
        assert "--push" not in call and "--platform" not in call


def test_push_builds_every_platform_with_buildx_under_the_registry(build) -> None:
    run = build(
        "operator",
        "cuda",
        LLMSERVER_IMAGE_REGISTRY="ghcr.io/acme/",
        LLMSERVER_IMAGE_TAG="1.2.3",
        LLMSERVER_IMAGE_PLATFORMS="linux/amd64,linux/arm64",
        LLMSERVER_IMAGE_PUSH="1",
    )
    assert run.returncode == 0, run.stderr
    assert [_tags(call) for call in run.calls] == [
        ["ghcr.io/acme/llmserver-operator:1.2.3"],
        ["ghcr.io/acme/llmserver-runtime-cuda:1.2.3"],
    ]
    for call in run.calls:
        assert call.startswith("buildx build "), call
        assert "--platform linux/amd64,linux/arm64" in call
        assert "--push" in call


def test_one_platform_without_push_loads_locally(build) -> None:
    run = build("cpu", LLMSERVER_IMAGE_PLATFORMS="linux/arm64")
    assert run.returncode == 0, run.stderr
    assert len(run.calls) == 1
    assert run.calls[0].startswith("buildx build --platform linux/arm64 ")
    assert "--push" not in run.calls[0]
    assert _tags(run.calls[0]) == ["llmserver-runtime:dev"]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"LLMSERVER_IMAGE_PLATFORMS": "linux/amd64,linux/arm64"}, "need LLMSERVER_IMAGE_PUSH=1"),
        ({"LLMSERVER_IMAGE_PUSH": "yes"}, "LLMSERVER_IMAGE_PUSH must be 0 or 1"),
        ({"LLMSERVER_IMAGE_PUSH": "1", "LLMSERVER_IMAGE_ENGINE": "podman"}, "need docker (buildx), not podman"),
    ],
)
def test_refused_option_combinations_build_nothing(build, options: dict[str, str], said: str) -> None:
    run = build("operator", **options)
    assert run.returncode == 2
    assert said in run.stderr
    assert run.calls == []
