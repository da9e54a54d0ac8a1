"""The pure builders against expected objects: names, labels, commands, GPUs, probes, hardening."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import llmserver_api
import pytest
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import cache, common, deployment, download, engine_args, plan, service

pytestmark = pytest.mark.timeout(60)

LABELS = {
    "app.kubernetes.io/component": "runtime",
    "app.kubernetes.io/instance": "tiny",
    "app.kubernetes.io/managed-by": "llmserver-operator",
    "app.kubernetes.io/name": "llmserver-runtime",
    "serving.llmserver.dev/server": "tiny",
}


def server(**spec: Any) -> llmserver_api.LLMServer:
    body = {"model": "tiny", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "acme/tiny-gguf", "file": "m.gguf"}}}
    body.update(spec)
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": "tiny", "namespace": "team"}, "spec": body})


@pytest.fixture
def settings() -> settings_mod.Settings:
    return settings_mod.Settings(runtime_images={
        "cpu": {"image": "registry.example/runtime:1.2.3", "engines": ["llama-cpp", "transformers"]},
        "cuda": {"image": "registry.example/runtime-cuda:1.2.3", "engines": ["vllm", "transformers", "llama-cpp"],
                 "accelerators": ["nvidia.com/gpu"]},
        "rocm": {"image": "registry.example/runtime-rocm:1.2.3", "engines": ["vllm", "llama-cpp"],
                 "accelerators": ["amd.com/gpu"]},
        "intel": {"image": "registry.example/runtime-xpu:1.2.3", "engines": ["llama-cpp"],
                  "accelerators": ["gpu.intel.com/i915"]},
    })


def container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def test_deployment_runs_the_contract_command_line(settings: settings_mod.Settings) -> None:
    obj = deployment.build_deployment(server(llamaCpp={"nCtx": 4096}, capabilities=["TextGeneration"]), settings)
    assert obj["metadata"] == {"name": "tiny", "namespace": "team", "labels": LABELS}
    main = container(obj)
    assert main["image"] == "registry.example/runtime:1.2.3"
    assert main["command"] == ["llmserver-runtime"]
    assert main["args"] == [
        "serve", "--backend", "llama-cpp", "--model", "/models/hf/acme/tiny-gguf/main/m.gguf",
        "--served-model-name", "tiny", "--host", "0.0.0.0", "--port", "8080",
        "--capabilities", "TextGeneration", "--n-ctx", "4096",
    ]
    assert main["ports"] == [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]
    assert obj["spec"]["selector"]["matchLabels"] == common.selector(server())
    assert obj["spec"]["template"]["metadata"]["labels"] == LABELS


def test_labels_and_env_are_sorted(settings: settings_mod.Settings) -> None:
    obj = deployment.build_deployment(server(), settings)
    assert list(obj["metadata"]["labels"]) == sorted(obj["metadata"]["labels"])
    names = [item["name"] for item in container(obj)["env"]]
    assert names == sorted(names)


def test_probes_hit_the_runtime_health_endpoints(settings: settings_mod.Settings) -> None:
    main = container(deployment.build_deployment(server(), settings))
    assert main["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    # a slow model load must not be killed by the liveness probe: the startup probe allows 30 minutes
    assert main["startupProbe"]["periodSeconds"] * main["startupProbe"]["failureThreshold"] >= 1800


def test_pods_are_hardened(settings: settings_mod.Settings) -> None:
    obj = deployment.build_deployment(server(), settings)
    pod = obj["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    hardening = container(obj)["securityContext"]
    assert hardening["capabilities"] == {"drop": ["ALL"]}
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["readOnlyRootFilesystem"] is True  # llama.cpp writes nothing outside /tmp


def test_cache_is_mounted_read_only_and_scrape_annotations_set(settings: settings_mod.Settings) -> None:
    obj = deployment.build_deployment(server(), settings)
    mounts = {m["mountPath"]: m for m in container(obj)["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": "llmserver-model-cache", "readOnly": True}
    annotations = obj["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_gpus_are_requested_and_limited_with_a_configurable_resource(settings: settings_mod.Settings) -> None:
    obj = deployment.build_deployment(server(resources={"gpus": 2, "memory": "16Gi"}), settings)
    resources = container(obj)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "2"
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == "16Gi"
    assert {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"} in obj["spec"]["template"]["spec"]["tolerations"]
    # GPU pods roll without a surge pod that would need GPUs nobody has
    assert obj["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}

    amd = settings.model_copy(update={"gpu_resource_name": "amd.com/gpu"})
    assert "amd.com/gpu" in container(deployment.build_deployment(server(resources={"gpus": 1}), amd))["resources"]["limits"]
    explicit = server(resources={"gpus": 1, "gpuResourceName": "gpu.intel.com/i915"})
    assert "gpu.intel.com/i915" in container(deployment.build_deployment(explicit, amd))["resources"]["limits"]


def test_default_resources_come_from_settings(settings: settings_mod.Settings) -> None:
    resources = container(deployment.build_deployment(server(), settings))["resources"]
    assert resources == {"requests": {"cpu": "1", "memory": "2Gi"}}
    none = settings.model_copy(update={"default_cpu": None, "default_memory": None})
    assert container(deployment.build_deployment(server(), none))["resources"] == {"requests": {}}


def test_vllm_defaults_tensor_parallel_to_the_gpus_and_gets_memory_backed_shm(settings: settings_mod.Settings) -> None:
    obj = deployment.build_deployment(server(backend="vllm", source={"huggingFace": {"repo": "acme/tiny"}},
                                             resources={"gpus": 4}, vllm={"maxModelLen": 2048}), settings)
    args = container(obj)["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert args[args.index("--max-model-len") + 1] == "2048"
    assert args[args.index("--model") + 1] == "/models/hf/acme/tiny/main"
    volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory"}
    assert {"mountPath": "/dev/shm", "name": "dshm"} in container(obj)["volumeMounts"]
    explicit = server(backend="vllm", resources={"gpus": 4}, vllm={"tensorParallelSize": 2})
    args = container(deployment.build_deployment(explicit, settings))["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"


def test_each_backend_gets_its_own_flags() -> None:
    def flags(**spec: Any) -> list[str]:
        return engine_args.serve_args(server(**spec).spec, "/models/x", 8080)[11:]

    assert flags(resources={"gpus": 1}) == ["--n-gpu-layers", "-1"]
    assert flags(backend="transformers", transformers={"loadIn4bit": True, "dtype": "bfloat16"}) == [
        "--load-in-4bit", "--dtype", "bfloat16"]
    assert flags(backend="mlx", mlx={"maxKvSize": 512}) == ["--max-kv-size", "512"]
    assert flags(backend="mlx-vlm", mlxVlm={"maxKvSize": 512, "maxTokens": 64}) == ["--max-kv-size", "512", "--max-tokens", "64"]
    assert flags(backend="auto", llamaCpp={"nBatch": 64}) == ["--n-batch", "64"]
    assert flags(trustRemoteCode=True, extraArgs=["--seed", "7"]) == ["--trust-remote-code", "--", "--seed", "7"]


def test_auto_is_passed_through_to_the_runtime(settings: settings_mod.Settings) -> None:
    args = container(deployment.build_deployment(server(backend="auto"), settings))["args"]
    assert args[args.index("--backend") + 1] == "auto"


def test_pod_template_hash_moves_with_the_template_only(settings: settings_mod.Settings) -> None:
    def template_hash(obj: dict[str, Any]) -> str:
        return obj["spec"]["template"]["metadata"]["annotations"][common.POD_TEMPLATE_HASH]

    base = deployment.build_deployment(server(), settings)
    assert template_hash(base) == template_hash(deployment.build_deployment(server(), settings))
    assert template_hash(base) == template_hash(deployment.build_deployment(server(replicas=3), settings))
    assert template_hash(base) != template_hash(deployment.build_deployment(server(llamaCpp={"nCtx": 512}), settings))
    stamped = common.stamp_config_hash(copy.deepcopy(base))
    rescaled = common.stamp_config_hash(deployment.build_deployment(server(replicas=3), settings))
    assert stamped["metadata"]["annotations"][common.CONFIG_HASH] != rescaled["metadata"]["annotations"][common.CONFIG_HASH]
    assert common.stamp_config_hash(copy.deepcopy(stamped)) == stamped  # re-stamping is stable


def test_service_exposes_port_http(settings: settings_mod.Settings) -> None:
    obj = service.build_service(server(), settings)
    assert obj["metadata"]["name"] == "tiny"
    assert obj["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]
    assert obj["spec"]["selector"] == common.selector(server())
    assert obj["spec"]["type"] == "ClusterIP"


def test_download_job_keeps_the_token_out_of_args(settings: settings_mod.Settings) -> None:
    spec = {"huggingFace": {"repo": "acme/gated", "revision": "v2", "tokenSecretRef": {"name": "hf", "key": "token"}}}
    obj = download.build_download_job(server(source=spec), settings)
    assert obj["metadata"]["name"] == f"tiny-download-{download.source_hash(server(source=spec))}"
    assert len(download.source_hash(server(source=spec))) == 8
    main = container(obj)
    assert main["args"] == ["download", "--repo", "acme/gated", "--revision", "v2", "--cache-dir", "/models",
                            "--report-to", "team/tiny"]
    token = next(item for item in main["env"] if item["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"key": "token", "name": "hf", "optional": False}
    assert obj["spec"]["template"]["spec"]["serviceAccountName"] == "tiny-download"
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert obj["spec"]["backoffLimit"] == settings.download_backoff_limit
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert "readOnly" not in mounts["/models"]  # the downloader writes the cache


def test_download_job_name_follows_the_source_not_the_token(settings: settings_mod.Settings) -> None:
    one = download.job_name(server(source={"huggingFace": {"repo": "acme/a", "tokenSecretRef": {"name": "x", "key": "k"}}}))
    same = download.job_name(server(source={"huggingFace": {"repo": "acme/a"}}))
    other = download.job_name(server(source={"huggingFace": {"repo": "acme/a", "revision": "v2"}}))
    assert one == same != other
    args = container(download.build_download_job(server(), settings))["args"]
    assert args[args.index("--file") + 1] == "m.gguf"


def test_download_identity_may_only_touch_its_own_status(settings: settings_mod.Settings) -> None:
    role = download.build_download_role(server(), settings)
    assert role["rules"] == [{"apiGroups": ["serving.llmserver.dev"], "resourceNames": ["tiny"],
                              "resources": ["llmservers/status"], "verbs": ["get", "patch"]}]
    binding = download.build_download_role_binding(server(), settings)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tiny-download", "namespace": "team"}]


def test_cache_claim_from_spec_or_settings(settings: settings_mod.Settings) -> None:
    default = cache.build_cache_pvc(server(), settings)
    assert default["metadata"]["name"] == "llmserver-model-cache"
    assert default["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}}}
    custom = cache.build_cache_pvc(server(cache={"claimName": "fast", "size": "5Gi", "storageClassName": "nvme",
                                                 "accessMode": "ReadWriteMany", "deleteOnServerDelete": True}), settings)
    assert custom["metadata"]["name"] == "fast"
    assert custom["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}},
                              "storageClassName": "nvme"}
    assert cache.owned_by_server(server(cache={"deleteOnServerDelete": True}))
    assert not cache.owned_by_server(server())


def test_pvc_source_is_mounted_in_place_without_a_download(settings: settings_mod.Settings) -> None:
    pvc = server(source={"pvc": {"claimName": "models", "path": "qwen/q4.gguf"}})
    assert plan.download_children(pvc, settings) is None
    obj = deployment.build_deployment(pvc, settings)
    args = container(obj)["args"]
    assert args[args.index("--model") + 1] == "/models/qwen/q4.gguf"
    volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "models"


def test_placement_by_mode_and_backend(settings: settings_mod.Settings) -> None:
    proxy = server(mode="Proxy", source=None, backend="auto", proxy={"url": "https://api.example/v1"})
    assert plan.placement(proxy.spec) == plan.Placement.PROXY
    assert plan.all_children(proxy, settings) == []
    assert plan.placement(server(backend="mlx").spec) == plan.Placement.APPLE
    assert plan.placement(server(backend="auto", apple={}).spec) == plan.Placement.APPLE
    kinds = [obj["kind"] for obj in plan.all_children(server(), settings)]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim", "Job", "Deployment", "Service",
                     "NetworkPolicy"]


@pytest.mark.parametrize("spec", [
    {},
    {"backend": "vllm", "resources": {"gpus": 2, "nodeSelector": {"gpu": "h100"},
                                      "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}],
                                      "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                          "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}},
    {"source": {"pvc": {"claimName": "models", "path": "m"}}, "cache": {"claimName": "c", "storageClassName": "x"}},
    {"source": {"huggingFace": {"repo": "a/b", "tokenSecretRef": {"name": "hf", "key": "t"}}}, "backend": "transformers"},
])
def test_every_built_object_is_valid_kubernetes(settings: settings_mod.Settings, spec: dict[str, Any]) -> None:
    objects = plan.all_children(server(**spec), settings.model_copy(update={"shm_size_limit": "8Gi"}))
    assert objects
    for obj in objects:
        kubernetes_validate.validate(common.stamp_config_hash(obj), "1.32", strict=True)
