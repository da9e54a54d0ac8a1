"""Adapters on one host (local mode, Mac agent): where each one's files are, the runtime argv that
loads them at start, and a missing local adapter reported before anything starts."""

from __future__ import annotations

import pathlib

import llmserver_api
from llmserver_cli.hosting import argv, sources

SHA = "0f" * 32


def server(backend: str, adapters: list[dict[str, object]]) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": "base"},
        "spec": {"model": "base", "backend": backend, "source": {"huggingFace": {"repo": "Org/Base"}},
                 "adapters": adapters},
    })  # fmt: skip


ADAPTERS = [
    {"name": "hub", "source": {"huggingFace": {"repo": "Org/lora"}}},
    {"name": "url", "source": {"url": {"url": "https://m.example/l.gguf", "sha256": SHA}}},
    {"name": "mine", "source": {"pvc": {"claimName": "loras", "path": "mine"}}},
]


def test_each_adapter_path_on_a_host(tmp_path: pathlib.Path) -> None:
    spec = server("transformers", ADAPTERS).spec
    origin = tmp_path / "servers" / "base.yaml"
    cache = tmp_path / "cache"
    hub, url, mine = (sources.adapter_path(adapter, origin, cache) for adapter in spec.adapters)
    assert hub == cache / "hf/Org/lora/main"
    assert url == cache / f"url/m.example/{SHA}/l.gguf"
    assert mine == tmp_path / "servers" / "loras" / "mine"  # a local claim: relative to the manifest
    assert sources.adapter_path(spec.adapters[2], sources.ModelsRoot(tmp_path / "root"), cache) == tmp_path / "root/loras/mine"


def test_serve_argv_loads_the_adapters_at_start(tmp_path: pathlib.Path) -> None:
    model = server("vllm", ADAPTERS[:1])
    command = argv.serve("python", model, tmp_path / "m", "127.0.0.1", 9000, [("hub", "/c/hf/Org/lora/main")])
    assert command[command.index("--adapter") + 1] == "hub=/c/hf/Org/lora/main"
    assert command[command.index("--") + 1:] == ["--enable-lora"]  # vLLM turns LoRA on only at start
    plain = argv.serve("python", server("llama-cpp", []), tmp_path / "m", "127.0.0.1", 9000)
    assert "--adapter" not in plain and "--" not in plain


def test_a_missing_local_adapter_is_a_problem_before_start(tmp_path: pathlib.Path) -> None:
    (tmp_path / "loras").mkdir()
    origin = tmp_path / "base.yaml"
    assert sources.check_local(server("transformers", ADAPTERS), origin) == [
        f"spec.adapters[mine].source.pvc: {tmp_path / 'loras' / 'mine'} does not exist (locally claimName is a folder, "
        "absolute or relative to the manifest, and path a file or folder inside it)"
    ]
    (tmp_path / "loras" / "mine").mkdir()
    assert sources.check_local(server("transformers", ADAPTERS), origin) == []


def test_listing_models_is_not_use() -> None:
    """The gateway reads every replica's /v1/models (adapter probe): that must not keep a model
    from its idle unload."""
    import prometheus_client

    from llmserver_cli.hosting import activity
    from llmserver_runtime.server import metrics as runtime_metrics

    m = runtime_metrics.RuntimeMetrics("tiny", "transformers")
    before = activity.signature(prometheus_client.generate_latest(m.registry).decode())
    m.requests.labels(model="tiny", endpoint="models", status="200").inc()
    probed = activity.signature(prometheus_client.generate_latest(m.registry).decode())
    assert not activity.used_since(before, probed)
    m.requests.labels(model="tiny", endpoint="completions", status="200").inc()
    assert activity.used_since(probed, activity.signature(prometheus_client.generate_latest(m.registry).decode()))


def test_the_gateway_config_lists_a_self_hosted_servers_adapters(tmp_path: pathlib.Path) -> None:
    from llmserver_cli.hosting import hosted
    from llmserver_cli.local import gateway_config, routing

    unit = hosted.Hosted(key="base", server=server("transformers", ADAPTERS[:2]), origin=tmp_path / "b.yaml",
                         changed=lambda: None, phase="Ready", port=9100)  # fmt: skip
    plain = hosted.Hosted(key="p", server=llmserver_api.LLMServer.model_validate({
        "apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": "p"},
        "spec": {"model": "p", "source": {"huggingFace": {"repo": "Org/P"}}}}), origin=tmp_path, changed=lambda: None)  # fmt: skip
    models = {m["name"]: m for m in gateway_config.build(routing.routes([unit, plain], "http://127.0.0.1:1"))["models"]}
    assert models["base"]["adapters"] == ["hub", "url"]
    assert models["base"]["endpoints"] == [{"url": "http://127.0.0.1:9100", "ready": True}]
    assert "adapters" not in models["p"]
