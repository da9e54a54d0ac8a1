"""The runtime Deployment of a self-hosted LLMServer (named after it, docs/contracts.md)."""

from __future__ import annotations

from collections.abc import Sequence

import llmserver_api

from llmserver_operator import images
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import adapters as adapters_mod
from llmserver_operator.builders import common, engine_args

Manifest = common.Manifest


def _resources(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> Manifest:
    spec = server.spec.resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    cpu = spec.cpu or settings.default_cpu
    if cpu:
        requests["cpu"] = cpu
    if spec.memory:
        requests["memory"] = limits["memory"] = spec.memory
    elif settings.default_memory:
        requests["memory"] = settings.default_memory
    if spec.gpus > 0:
        requests[gpu_resource_name(server, settings)] = limits[gpu_resource_name(server, settings)] = str(spec.gpus)
    out: Manifest = {"requests": dict(sorted(requests.items()))}
    if limits:
        out["limits"] = dict(sorted(limits.items()))
    return out


def gpu_resource_name(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> str:
    """The spec's GPU resource when the user set one, else the operator's default (the chart's profile)."""
    return server.spec.resources.gpu_resource_name or settings.gpu_resource_name


def runtime_image(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> images.Choice:
    """The image for this server's pods: spec.image, else the catalog flavour that carries its
    (resolved) backend for the GPU resource its pods request (none without GPUs)."""
    accelerator = gpu_resource_name(server, settings) if server.spec.resources.gpus > 0 else None
    return images.choose(server, settings.runtime_images, accelerator)


def _probe(path: str, period: int, failures: int, timeout: int) -> Manifest:
    return {
        "failureThreshold": failures,
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
    }


def _volumes(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> tuple[list[Manifest], list[Manifest]]:
    claim = common.cache_claim_name(server, settings)
    volumes: list[Manifest] = [
        {"name": common.CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[Manifest] = [
        {"mountPath": "/models", "name": common.CACHE_VOLUME, "readOnly": True},
        {"mountPath": "/tmp", "name": "tmp"},
    ]
    if engine_args.needs_shm(server.spec):
        shm: Manifest = {"medium": "Memory"}
        if settings.shm_size_limit:
            shm["sizeLimit"] = settings.shm_size_limit
        volumes.append({"name": "dshm", "emptyDir": shm})
        mounts.append({"mountPath": "/dev/shm", "name": "dshm"})
    return volumes, mounts


def _tolerations(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> list[Manifest]:
    tolerations = [toleration.to_wire() for toleration in server.spec.resources.tolerations]
    if server.spec.resources.gpus > 0:
        gpu_taint = {"effect": "NoSchedule", "key": gpu_resource_name(server, settings), "operator": "Exists"}
        if gpu_taint not in tolerations:
            tolerations.append(gpu_taint)
    return tolerations


def pod_template(server: llmserver_api.LLMServer, settings: settings_mod.Settings,
                 adapters: Sequence[tuple[str, str]] | None = None) -> Manifest:
    """The runtime pod template, with a hash of itself so a rollout happens exactly when it changes.
    `adapters`: (name, path) started with the pods (None: every one a restart engine takes)."""
    spec = server.spec
    backend = spec.backend
    volumes, mounts = _volumes(server, settings)
    image = runtime_image(server, settings)
    if image.image is None:
        raise images.NoRuntimeImage(image.reason)
    container: Manifest = {
        "name": "runtime",
        "image": image.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["llmserver-runtime"],
        "args": engine_args.serve_args(spec, common.model_path(server), common.HTTP_PORT,
                                       adapters=adapters_mod.argv_adapters(server) if adapters is None else adapters,
                                       engine_extra=adapters_mod.engine_flags(spec)),
        "env": common.env(
            {
                "HF_HOME": "/tmp/huggingface",
                "HF_HUB_OFFLINE": "1",
                "HOME": "/tmp",
                "XDG_CACHE_HOME": "/tmp/.cache",
            }
        ),
        "ports": [{"containerPort": common.HTTP_PORT, "name": "http", "protocol": "TCP"}],
        "resources": _resources(server, settings),
        "startupProbe": _probe("/ready", period=10, failures=180, timeout=5),
        "readinessProbe": _probe("/ready", period=5, failures=3, timeout=5),
        "livenessProbe": _probe("/health", period=15, failures=4, timeout=5),
        "securityContext": common.container_security_context(engine_args.READ_ONLY_ROOT[backend]),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    pod_spec: Manifest = {
        "automountServiceAccountToken": False,
        "containers": [container],
        "enableServiceLinks": False,
        "securityContext": common.pod_security_context(settings),
        "volumes": volumes,
    }
    if spec.resources.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(spec.resources.node_selector.items()))
    tolerations = _tolerations(server, settings)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if spec.resources.affinity:
        pod_spec["affinity"] = spec.resources.affinity
    template: Manifest = {
        "metadata": {
            "annotations": {
                "prometheus.io/path": "/metrics",
                "prometheus.io/port": str(common.HTTP_PORT),
                "prometheus.io/scrape": "true",
            },
            "labels": common.labels(server, "runtime"),
        },
        "spec": pod_spec,
    }
    template["metadata"]["annotations"][common.POD_TEMPLATE_HASH] = common.digest(template)
    template["metadata"]["annotations"] = dict(sorted(template["metadata"]["annotations"].items()))
    return template


def build_deployment(server: llmserver_api.LLMServer, settings: settings_mod.Settings,
                     adapters: Sequence[tuple[str, str]] | None = None) -> Manifest:
    """Deployment `N`: replicas from the spec; pods roll one at a time: a surge pod first (new
    adapters of a restart engine are served before an old pod goes), GPU pods without one.
    `adapters` as for pod_template."""
    surge = {"maxSurge": 0, "maxUnavailable": 1} if server.spec.resources.gpus > 0 else {"maxSurge": 1, "maxUnavailable": 0}
    name = common.name_of(server)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(server, name, "runtime"),
        "spec": {
            "replicas": server.spec.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": common.selector(server)},
            "strategy": {"rollingUpdate": surge, "type": "RollingUpdate"},
            "template": pod_template(server, settings, adapters),
        },
    }
