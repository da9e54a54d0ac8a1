"""The chart configures the operator and the gateway through their own settings classes.

The rendered env is fed to the real pydantic-settings classes (llmserver_operator.settings.Settings,
llmserver_gateway.settings.GatewaySettings) and the gateway's command line to its real
click command, so a renamed setting or flag fails here instead of being silently ignored in a pod.
"""

from __future__ import annotations

from typing import Any

import click
import pytest

from llmserver_operator import images
from llmserver_operator import settings as operator_settings
from llmserver_gateway import cli as gateway_cli
from llmserver_gateway import settings as gateway_settings
from testkit import helm


def _env_settings(deployment: dict[str, Any], cls: type, prefix: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    env = helm.container_env(deployment)
    fields = {f"{prefix}{name}".upper() for name in cls.model_fields}
    unknown = sorted(name for name in env if name.startswith(prefix) and name not in fields)
    assert unknown == [], f"env the settings class does not read: {unknown}"
    for name in list(__import__("os").environ):
        if name.startswith(prefix):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls()


def _operator(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return helm.one(objects, "Deployment", "-operator")


def _gateway(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return helm.one(objects, "Deployment", "-gateway")


def test_operator_defaults(rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _env_settings(_operator(rendered["default"]), operator_settings.Settings,
                             "LLMSERVER_OPERATOR_", monkeypatch)
    assert {name: flavour.image for name, flavour in settings.runtime_images.items()} == {
        "cpu": "ghcr.io/llmserver/llmserver-runtime:0.1.0", "cuda": "ghcr.io/llmserver/llmserver-runtime-cuda:0.1.0"}
    assert settings.runtime_images == images.default_catalog()  # the chart and the operator agree
    assert settings.download_image == "ghcr.io/llmserver/llmserver-operator:0.1.0"  # no ML libraries
    assert settings.runtime_uid == 10001  # the images' user (runtime-image/Dockerfile)
    assert settings.namespaces == []
    assert settings.gateway_url == f"http://{helm.RELEASE}-llmserver-gateway.{helm.NAMESPACE}.svc/v1"
    assert (settings.default_cpu, settings.default_memory, settings.gpu_resource_name) == ("1", "2Gi", "nvidia.com/gpu")
    assert settings.cache_claim_name == "llmserver-model-cache" and settings.cache_size == "50Gi"
    assert settings.cache_storage_class is None  # unset: the cluster default, never "" (= no class)
    assert settings.peering_name is None
    assert settings.leader_election and settings.leader_election_namespace == helm.NAMESPACE
    assert settings.leader_election_lease_name == f"{helm.RELEASE}-llmserver-operator"
    assert settings.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert (settings.metrics_port, settings.metrics_address) == (8081, "0.0.0.0")  # reachable by the PodMonitor
    container = _operator(rendered["default"])["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "llmserver_operator"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 8081, "protocol": "TCP"}]


def test_operator_metrics_port_is_monitored(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The operator PodMonitor scrapes the container port the operator serves /metrics on."""
    monitor = helm.one(rendered["monitoring"], "PodMonitor", "-operator")
    deployment = _operator(rendered["monitoring"])
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    ports = {port["name"]: port["containerPort"] for port in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert (endpoint["port"], endpoint["path"], ports[endpoint["port"]]) == ("metrics", "/metrics", 8081)
    assert not [o for o in rendered["default"] if o["kind"] == "PodMonitor"]  # off by default


def test_operator_metrics_can_move_or_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    moved = helm.template({"operator": {"metricsPort": 9300}})
    assert _env_settings(_operator(moved), operator_settings.Settings, "LLMSERVER_OPERATOR_", monkeypatch).metrics_port == 9300
    off = helm.template({"operator": {"metricsPort": 0}, "monitoring": {"serviceMonitor": {"enabled": True}}})
    settings = _env_settings(_operator(off), operator_settings.Settings, "LLMSERVER_OPERATOR_", monkeypatch)
    assert settings.metrics_port == 0
    assert [p["name"] for p in _operator(off)["spec"]["template"]["spec"]["containers"][0]["ports"]] == ["health"]
    assert [o["metadata"]["name"] for o in off if o["kind"] == "PodMonitor"] == [f"{helm.RELEASE}-llmserver-runtime"]
    error = helm.template_error({"operator": {"metricsPort": 8080}})
    assert "operator.metricsPort and operator.healthPort are both 8080" in error


@pytest.mark.parametrize(("value_set", "expected"), [
    ("gpu-profile", {"default_cpu": "4", "default_memory": "24Gi", "gpu_resource_name": "nvidia.com/gpu",
                     "shm_size_limit": "8Gi"}),
    ("custom-profile", {"default_cpu": "16", "default_memory": "96Gi", "gpu_resource_name": "amd.com/gpu",
                        "shm_size_limit": "16Gi", "cache_storage_class": "fast-rwx",
                        "cache_access_mode": "ReadWriteMany", "cache_size": "500Gi"}),
    ("namespaced", {"namespaces": ["team-a", "team-b"]}),
    ("replicas", {"leader_election": True, "leader_election_lease_seconds": 30,
                  "leader_election_renew_deadline_seconds": 20.0, "leader_election_retry_seconds": 2.0}),
    ("single-operator", {"leader_election": False}),
    ("production", {"download_image": "registry.example.com/llm/llmserver-operator@sha256:" + "a" * 64}),
])
def test_operator_value_sets(rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch,
                             value_set: str, expected: dict[str, Any]) -> None:
    settings = _env_settings(_operator(rendered[value_set]), operator_settings.Settings,
                             "LLMSERVER_OPERATOR_", monkeypatch)
    assert {key: getattr(settings, key) for key in expected} == expected


def test_runtime_flavours_reach_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    """A digest pins a flavour, a registry prefixes it, and user flavours (with or without an image) arrive."""
    digest = "sha256:" + "b" * 64
    objects = helm.template({"image": {"registry": "reg.example/llm", "tag": "2.0"}, "runtime": {"images": {
        "cuda": {"repository": "llmserver-runtime-cuda", "digest": digest, "engines": ["vllm"],
                 "accelerators": ["nvidia.com/gpu"]},
        "rocm": {"repository": "", "engines": ["vllm", "llama-cpp"], "accelerators": ["amd.com/gpu"]},
    }}})
    settings = _env_settings(_operator(objects), operator_settings.Settings, "LLMSERVER_OPERATOR_", monkeypatch)
    catalog = settings.runtime_images
    assert catalog["cuda"].image == f"reg.example/llm/llmserver-runtime-cuda@{digest}"
    assert catalog["cpu"].image == "reg.example/llm/llmserver-runtime:2.0"  # the chart's defaults merge in
    assert catalog["rocm"].image == "" and catalog["rocm"].accelerators == ("amd.com/gpu",)


def _gateway_args(deployment: dict[str, Any]) -> list[str]:
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "llmserver-gateway"
    return command[1:]


@pytest.mark.parametrize("value_set", ["default", "auth", "single-namespace", "namespaced", "production"])
def test_gateway_command_and_env(rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch,
                                 value_set: str) -> None:
    deployment = _gateway(rendered[value_set])
    context = gateway_cli.command.make_context("gateway", _gateway_args(deployment))  # real flag parsing
    assert context.params["kubernetes"] is True and context.params["config_file"] is None
    assert context.params["port"] == 8000 and context.params["host"] == "0.0.0.0"
    settings = _env_settings(deployment, gateway_settings.GatewaySettings, "LLMSERVER_GATEWAY_", monkeypatch)
    ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert ports == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    if value_set == "auth":
        assert settings.api_keys_secret == f"{helm.NAMESPACE}/gateway-api-keys"
    else:  # auth is on by default, with the chart's generated Secret
        assert settings.api_keys_secret == f"{helm.NAMESPACE}/{helm.RELEASE}-llmserver-gateway-api-keys"
    assert settings.namespace == ("team-a" if value_set == "single-namespace" else None)
    if value_set == "production":
        assert settings.max_retries == 3  # extraEnv reaches the gateway


def test_gateway_flags_are_real() -> None:
    """The parser used above refuses what the gateway does not know (the check can fail)."""
    with pytest.raises(click.UsageError):
        gateway_cli.command.make_context("gateway", ["--kubernetes", "--no-such-flag"])
