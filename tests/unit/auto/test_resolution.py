"""resolution.Resolver without a cluster: the Hub is asked once per (repo, revision, file), failures
are remembered briefly, the token comes from the Secret, and the status additions are stable."""

from __future__ import annotations

import base64
from typing import Any

import llmserver_api
import pytest
from llmserver_api import detection
from llmserver_operator import hub, resolution
from llmserver_operator.builders import plan

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}


class Secrets:
    """The one Kube method the resolver uses."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects
        self.reads = 0

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        assert kind == "Secret"
        self.reads += 1
        return self.objects.get(name)


class Hub:
    def __init__(self, answer: detection.ModelFiles | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, repo: str, revision: str, token: str | None, file: str | None) -> detection.ModelFiles:
        self.calls.append((repo, revision, token, file))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def server(**spec: Any) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
        "metadata": {"name": "s", "namespace": "ns"}, "spec": {"model": "m", **spec}})


def hf(repo: str = "acme/llama", **extra: Any) -> dict[str, Any]:
    return {"huggingFace": {"repo": repo, **extra}}


LLAMA_FILES = detection.ModelFiles(files=("config.json", "model.safetensors"), configs={"config.json": LLAMA}, name="acme/llama")


def test_the_hub_is_asked_once_per_repo_revision_and_file() -> None:
    fetch = Hub(LLAMA_FILES)
    resolver = resolution.Resolver(Secrets({}), fetch=fetch)  # type: ignore[arg-type]
    first = resolver.resolve(server(backend="auto", source=hf()))
    second = resolver.resolve(server(backend="auto", source=hf()))
    assert fetch.calls == [("acme/llama", "main", None, None)]
    assert first.server.spec.backend == second.server.spec.backend == llmserver_api.Backend.TRANSFORMERS
    resolver.resolve(server(backend="auto", source=hf(revision="v2")))
    assert len(fetch.calls) == 2


def test_hub_failures_are_remembered_for_a_while_then_retried() -> None:
    now = [0.0]
    fetch = Hub(hub.HubError("acme/llama was not found on http://hub"))
    resolver = resolution.Resolver(Secrets({}), fetch=fetch, error_ttl=30, clock=lambda: now[0])  # type: ignore[arg-type]
    result = resolver.resolve(server(backend="auto", source=hf()))
    assert result.condition is not None and result.condition[:2] == ("False", "HubUnavailable")
    assert result.server.spec.backend == llmserver_api.Backend.AUTO and result.blocked is None
    now[0] = 10
    resolver.resolve(server(backend="auto", source=hf()))
    assert len(fetch.calls) == 1
    now[0], fetch.answer = 31, LLAMA_FILES
    assert resolver.resolve(server(backend="auto", source=hf())).condition[1] == "Detected"  # type: ignore[index]
    assert len(fetch.calls) == 2


@pytest.mark.parametrize("field", ["data", "stringData"])
def test_token_comes_from_the_secret_and_stays_out_of_status(field: str) -> None:
    value = base64.b64encode(b"hf_secret").decode() if field == "data" else "hf_secret"
    secrets = Secrets({"hf": {field: {"token": value}}})
    fetch = Hub(LLAMA_FILES)
    resolver = resolution.Resolver(secrets, fetch=fetch)  # type: ignore[arg-type]
    result = resolver.resolve(server(backend="auto", source=hf(tokenSecretRef={"name": "hf", "key": "token"})))
    assert fetch.calls[0][2] == "hf_secret"
    assert "hf_secret" not in repr(result.resolved) + repr(result.condition)
    resolver.resolve(server(backend="auto", source=hf(tokenSecretRef={"name": "hf", "key": "token"})))
    assert secrets.reads == 1  # a cached answer needs no Secret read either


def test_explicit_values_and_other_modes_need_no_hub() -> None:
    fetch = Hub(LLAMA_FILES)
    resolver = resolution.Resolver(Secrets({}), fetch=fetch)  # type: ignore[arg-type]
    explicit = resolver.resolve(server(backend="vllm", capabilities=["TextGeneration"], source=hf()))
    assert explicit.resolved is None and explicit.condition is None
    given = resolver.resolve(server(backend="transformers", source=hf()))
    assert given.resolved is not None and given.resolved["backend"] == "transformers"
    proxy = resolver.resolve(server(mode="Proxy", proxy={"url": "https://api.example.com/v1"}))
    assert proxy.resolved is None
    assert fetch.calls == []


def test_mlx_repo_moves_the_server_to_a_mac() -> None:
    files = detection.ModelFiles(files=("config.json", "model.safetensors"), configs={"config.json": LLAMA},
                                 name="mlx-community/x", tags=("mlx",), library_name="mlx")
    resolver = resolution.Resolver(Secrets({}), fetch=Hub(files))  # type: ignore[arg-type]
    result = resolver.resolve(server(backend="auto", source=hf("mlx-community/x")))
    assert result.server.spec.backend == llmserver_api.Backend.MLX
    assert plan.placement(result.server.spec) == plan.Placement.APPLE


@pytest.mark.parametrize("folder", ["", "Q4_K_M/"])
def test_split_gguf_repo_is_named_by_its_first_part(folder: str) -> None:
    parts = [f"{folder}big-Q4_K_M-0000{n}-of-00003.gguf" for n in (3, 1, 2)]  # listed in any order
    files = detection.ModelFiles(files=("README.md", *parts), name="acme/big-gguf", tags=("gguf",))
    fetch = Hub(files)
    resolver = resolution.Resolver(Secrets({}), fetch=fetch)  # type: ignore[arg-type]
    result = resolver.resolve(server(backend="auto", source=hf("acme/big-gguf")))
    assert result.blocked is None and result.condition is not None and result.condition[:2] == ("True", "Detected")
    assert result.server.spec.backend == llmserver_api.Backend.LLAMA_CPP
    hugging_face = result.server.spec.source.hugging_face  # type: ignore[union-attr]
    assert hugging_face is not None and hugging_face.file == f"{folder}big-Q4_K_M-00001-of-00003.gguf"
    assert fetch.calls == [("acme/big-gguf", "main", None, None)]  # the Hub is asked about the repo, not the file


def test_split_gguf_with_a_missing_part_names_no_file() -> None:
    files = detection.ModelFiles(files=("big-00001-of-00003.gguf", "big-00003-of-00003.gguf"), name="acme/broken")
    result = resolution.Resolver(Secrets({}), fetch=Hub(files)).resolve(  # type: ignore[arg-type]
        server(backend="auto", source=hf("acme/broken")))
    assert result.blocked is not None and "lacks 1 of its 3 parts (big-00002-of-00003.gguf)" in result.blocked
    assert result.server.spec.source.hugging_face.file is None  # type: ignore[union-attr]


def test_resolved_condition_keeps_its_transition_time() -> None:
    result = resolution.Result(server(backend="auto", source=hf()), {"reason": "r", "capabilities": []},
                               ("True", "Detected", "r"))
    first = resolution.with_resolved({"conditions": []}, None, result, 1, "t1")
    again = resolution.with_resolved({"conditions": []}, first, result, 1, "t2")
    assert again["conditions"] == first["conditions"] and first["conditions"][0]["lastTransitionTime"] == "t1"
    assert not resolution.changed(first, again)
    cleared = resolution.with_resolved({"conditions": []}, first, None, 1, "t3")
    assert cleared == {"conditions": [], "resolved": None} and resolution.changed(first, cleared)
