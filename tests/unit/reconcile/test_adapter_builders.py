"""spec.adapters in the builders: one download Job per adapter (same downloader, cache and identity,
reporting into its status entry), `--adapter NAME=PATH` in the argv of restart engines only, and
`llmserver render`'s list carrying both."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pydantic
import llmserver_api
import pytest
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import adapters, deployment, download, plan

pytestmark = pytest.mark.timeout(60)

SHA = "cd" * 32
HUB_ADAPTER = {"name": "sql", "source": {"huggingFace": {"repo": "acme/tiny-sql-lora", "revision": "v1"}}}
URL_ADAPTER = {"name": "poem", "source": {"url": {"url": "https://mirror.example/loras/poem.gguf", "sha256": SHA}}}
S3_ADAPTER = {"name": "legal",
              "source": {"s3": {"bucket": "loras", "prefix": "legal", "credentialsSecretRef": {"name": "s3"}}}}


def server(backend: str = "llama-cpp", adapter_list: list[dict[str, Any]] | None = None,
           **spec: Any) -> llmserver_api.LLMServer:
    body = {"model": "tiny", "backend": backend, "source": {"huggingFace": {"repo": "acme/tiny", "file": "m.gguf"}},
            "adapters": adapter_list if adapter_list is not None else [HUB_ADAPTER, URL_ADAPTER], **spec}
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": "tiny", "namespace": "team"}, "spec": body})


@pytest.fixture
def settings() -> settings_mod.Settings:
    return settings_mod.Settings(runtime_images={"cpu": {"image": "registry.example/runtime:1",
                                                         "engines": ["llama-cpp", "transformers", "vllm"]}})


def args_of(obj: dict[str, Any]) -> list[str]:
    return obj["spec"]["template"]["spec"]["containers"][0]["args"]


def test_each_adapter_gets_its_own_job_on_the_model_cache_reporting_into_its_entry(
        settings: settings_mod.Settings) -> None:
    found = plan.adapter_children(server(), settings)
    assert found is not None
    model_job = download.build_download_job(server(), settings)
    sql, poem = found.jobs
    assert [j["metadata"]["name"] for j in found.jobs] == [adapters.job_name(server(), server().spec.adapters[0]),
                                                          adapters.job_name(server(), server().spec.adapters[1])]
    assert sql["metadata"]["name"].startswith("tiny-adapter-") and sql["metadata"]["name"] != poem["metadata"]["name"]
    assert args_of(sql) == ["download", "--repo", "acme/tiny-sql-lora", "--revision", "v1", "--cache-dir", "/models",
                            "--report-to", "team/tiny", "--report-adapter", "sql"]
    assert args_of(poem)[:5] == ["download", "--url", "https://mirror.example/loras/poem.gguf", "--sha256", SHA]
    # same identity, claim and image as the model's Job
    for key in ("serviceAccountName", "volumes", "securityContext"):
        assert sql["spec"]["template"]["spec"][key] == model_job["spec"]["template"]["spec"][key]
    assert adapters.adapter_of(sql) == "sql" and adapters.adapter_of(model_job) is None
    assert [o["kind"] for o in found.identity] == ["ServiceAccount", "Role", "RoleBinding"]
    kubernetes_validate.validate(sql, "1.30", strict=True)


def test_adapter_job_name_follows_its_source_and_s3_keys_come_from_the_secret(settings: settings_mod.Settings) -> None:
    before = plan.adapter_children(server(adapter_list=[S3_ADAPTER]), settings)
    moved = {**S3_ADAPTER, "source": {"s3": {**S3_ADAPTER["source"]["s3"], "prefix": "legal-v2"}}}
    after = plan.adapter_children(server(adapter_list=[moved]), settings)
    assert before is not None and after is not None
    assert before.jobs[0]["metadata"]["name"] != after.jobs[0]["metadata"]["name"]
    env = {e["name"]: e for e in before.jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "s3"
    assert "--s3" in args_of(before.jobs[0]) and "s3://loras/legal/" in args_of(before.jobs[0])


def test_restart_engines_start_with_the_downloaded_adapters_only(settings: settings_mod.Settings) -> None:
    srv = server()
    argv = adapters.argv_adapters(srv, frozenset({"poem"}))
    assert argv == [("poem", f"/models/url/mirror.example/{SHA}/poem.gguf")]
    args = args_of(deployment.build_deployment(srv, settings, argv))
    assert args[args.index("--adapter") + 1] == f"poem=/models/url/mirror.example/{SHA}/poem.gguf"
    assert args.count("--adapter") == 1
    everything = args_of(deployment.build_deployment(srv, settings))  # None: every adapter (render)
    assert "sql=/models/hf/acme/tiny-sql-lora/v1" in everything
    # one pod at a time, a surge pod first
    assert deployment.build_deployment(srv, settings)["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1,
                                                                                           "maxUnavailable": 0}


def test_adapters_come_before_extra_args(settings: settings_mod.Settings) -> None:
    args = args_of(deployment.build_deployment(server(extraArgs=["--seed", "1"]), settings))
    assert args.index("--adapter") < args.index("--") and args[-2:] == ["--seed", "1"]


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_live_engines_pod_template_never_changes_with_adapters(settings: settings_mod.Settings, backend: str) -> None:
    one = deployment.build_deployment(server(backend, adapter_list=[HUB_ADAPTER]), settings)
    some = deployment.build_deployment(server(backend), settings)
    other = deployment.build_deployment(server(backend, adapter_list=[S3_ADAPTER, URL_ADAPTER]), settings)
    assert one["spec"]["template"] == some["spec"]["template"] == other["spec"]["template"]
    assert "--adapter" not in args_of(some)
    assert adapters.argv_adapters(server(backend)) == []
    none = deployment.build_deployment(server(backend, adapter_list=[]), settings)
    assert (none["spec"]["template"] == some["spec"]["template"]) is (backend == "transformers")


def test_vllm_switches_lora_on_while_it_has_adapters(settings: settings_mod.Settings) -> None:
    args = args_of(deployment.build_deployment(server("vllm", extraArgs=["--max-loras=4"]), settings))
    assert args[args.index("--"):] == ["--", "--enable-lora", "--max-loras=4"]  # the user's flags last
    assert "--enable-lora" not in args_of(deployment.build_deployment(server("vllm", adapter_list=[]), settings))
    already = args_of(deployment.build_deployment(server("vllm", extraArgs=["--enable-lora"]), settings))
    assert already.count("--enable-lora") == 1
    assert "--enable-lora" not in args_of(deployment.build_deployment(server("transformers"), settings))


def test_pvc_adapter_is_read_in_place_and_only_from_the_mounted_claim(settings: settings_mod.Settings) -> None:
    on_cache = {"name": "a", "source": {"pvc": {"claimName": settings.cache_claim_name, "path": "loras/a"}}}
    elsewhere = {"name": "b", "source": {"pvc": {"claimName": "other", "path": "loras/b"}}}
    srv = server(adapter_list=[on_cache, elsewhere])
    assert plan.adapter_children(srv, settings) is None
    assert adapters.adapter_path(srv.spec.adapters[0]) == "/models/loras/a"
    assert adapters.unmounted_claim(srv, srv.spec.adapters[0], settings) is None
    assert adapters.unmounted_claim(srv, srv.spec.adapters[1], settings) == "other"


def test_render_lists_adapter_jobs_and_argv(settings: settings_mod.Settings) -> None:
    objects = plan.all_children(server(), settings)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    jobs = [name for kind, name in kinds if kind == "Job"]
    assert len(jobs) == 3 and jobs[0].startswith("tiny-download-")
    assert kinds.count(("ServiceAccount", "tiny-download")) == 1
    dep = next(o for o in objects if o["kind"] == "Deployment")
    assert args_of(dep).count("--adapter") == 2


def test_render_with_a_pvc_model_still_lists_the_adapter_identity(settings: settings_mod.Settings) -> None:
    srv = server(source={"pvc": {"claimName": "mine", "path": "m.gguf"}}, adapter_list=[HUB_ADAPTER])
    kinds = [o["kind"] for o in plan.all_children(srv, settings)]
    assert kinds[:4] == ["ServiceAccount", "Role", "RoleBinding", "Job"] and "PersistentVolumeClaim" not in kinds


def test_the_runtime_policy_admits_the_operator_on_the_runtime_port() -> None:
    """Live loads go from the operator's pod to each replica's http port: NetworkPolicy N lets it."""
    from llmserver_operator.builders import common, network_policy

    policy = network_policy.build_network_policy(server("vllm"), settings_mod.Settings())
    assert policy is not None
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": common.HTTP_PORT, "protocol": "TCP"}]
    components = [peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
                  for peer in rule["from"]]
    operator_pods = [peer for peer, component in zip(rule["from"], components, strict=True) if component == "operator"]
    assert operator_pods and operator_pods[0]["namespaceSelector"]


def test_mlx_vlm_gets_no_adapters_and_says_why(settings: settings_mod.Settings) -> None:
    with pytest.raises(pydantic.ValidationError, match="mlx-vlm backend cannot load LoRA adapters"):
        server("mlx-vlm")
    resolved = server("auto")  # backend auto that resolved to mlx-vlm: the builders see the decided backend
    resolved.spec.backend = llmserver_api.Backend.MLX_VLM
    assert adapters.argv_adapters(resolved) == []
    assert "cannot load LoRA adapters" in (adapters.unsupported(resolved.spec) or "")
    assert adapters.unsupported(server("mlx").spec) is None and adapters.argv_adapters(server("mlx"))
