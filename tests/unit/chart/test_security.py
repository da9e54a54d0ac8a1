"""Every pod the chart runs is locked down: non-root, read-only root filesystem, no capabilities,
no privilege escalation, RuntimeDefault seccomp; writable scratch only through emptyDir."""

from __future__ import annotations

from typing import Any

import pytest

from testkit import helm

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def _pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            template = obj["spec"]["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else obj["spec"].get("template", obj)
            specs.append((f"{obj['kind']}/{obj['metadata']['name']}", template["spec"]))
    return specs


@pytest.mark.parametrize("name", sorted(helm.VALUE_SETS))
def test_every_pod_is_locked_down(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    specs = _pod_specs(rendered[name])
    assert specs, "no workloads rendered"
    for where, spec in specs:
        pod = spec.get("securityContext") or {}
        assert pod.get("runAsNonRoot") is True, where
        assert pod.get("runAsUser", 0) > 0, where
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            sc = container.get("securityContext") or {}
            label = f"{where} container {container['name']}"
            assert sc.get("readOnlyRootFilesystem") is True, label
            assert sc.get("allowPrivilegeEscalation") is False, label
            assert sc.get("capabilities") == {"drop": ["ALL"]}, label
            assert sc.get("privileged") in (None, False), label
            assert sc.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}, label
            assert container.get("resources", {}).get("requests"), f"{label}: no resource requests"
            # A read-only root needs somewhere to write: only emptyDir mounts are writable.
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for mount in container.get("volumeMounts", []):
                if not mount.get("readOnly"):
                    assert "emptyDir" in volumes[mount["name"]], f"{label}: writable mount {mount['name']}"


@pytest.mark.parametrize("name", sorted(helm.VALUE_SETS))
def test_service_accounts_mount_tokens_only_where_used(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    """ServiceAccounts default to no token; the two pods that call the API opt in explicitly."""
    for account in helm.by_kind(rendered[name], "ServiceAccount"):
        assert account.get("automountServiceAccountToken") is False, account["metadata"]["name"]
    for where, spec in _pod_specs(rendered[name]):
        assert spec.get("automountServiceAccountToken") is True, where
        assert spec["serviceAccountName"], where


def test_probes_on_every_container(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for where, spec in _pod_specs(rendered["default"]):
        for container in spec["containers"]:
            assert container.get("livenessProbe") and container.get("readinessProbe"), where
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in ports, f"{where} {probe}"
