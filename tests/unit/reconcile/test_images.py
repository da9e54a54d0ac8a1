"""The runtime image catalog: which flavour each LLMServer gets, and why none fits."""

from __future__ import annotations

from typing import Any

import llmserver_api
import pydantic
import pytest
from llmserver_operator import images
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import deployment

pytestmark = pytest.mark.timeout(30)


def server(**spec: Any) -> llmserver_api.LLMServer:
    body = {"model": "m", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "a/b", "file": "m.gguf"}}}
    body.update(spec)
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": "m", "namespace": "t"}, "spec": body})


def choice(settings: settings_mod.Settings | None = None, **spec: Any) -> images.Choice:
    return deployment.runtime_image(server(**spec), settings or settings_mod.Settings())


def test_default_catalog_picks_cpu_or_cuda_by_engine_and_gpus() -> None:
    cpu = choice()
    assert (cpu.flavour, cpu.image) == ("cpu", "ghcr.io/llmserver/llmserver-runtime:0.1.0")
    assert choice(resources={"gpus": 1}).flavour == "cuda"  # llama-cpp offloading to an NVIDIA GPU
    hf = {"huggingFace": {"repo": "a/b"}}
    assert choice(backend="vllm", source=hf, resources={"gpus": 2}).flavour == "cuda"
    assert choice(backend="transformers", source=hf).flavour == "cpu"
    assert choice(backend="transformers", source=hf, resources={"gpus": 1}).image.endswith("runtime-cuda:0.1.0")


@pytest.mark.parametrize(("spec", "words"), [
    ({"backend": "vllm", "source": {"huggingFace": {"repo": "a/b"}}}, ["vllm engine for CPU", "runtime.images"]),
    ({"resources": {"gpus": 1, "gpuResourceName": "amd.com/gpu"}}, ["llama-cpp engine for amd.com/gpu",
                                                                       "accelerators: [amd.com/gpu]"]),
])
def test_no_fit_names_engine_accelerator_and_chart_value(spec: dict[str, Any], words: list[str]) -> None:
    found = choice(**spec)
    assert found.image is None and found.flavour is None
    assert all(word in found.reason for word in words), found.reason
    with pytest.raises(images.NoRuntimeImage, match="runtime.images"):
        deployment.build_deployment(server(**spec), settings_mod.Settings())


def test_a_declared_flavour_without_image_says_which_value_to_set() -> None:
    settings = settings_mod.Settings(runtime_images={
        **images.default_catalog(),
        "rocm": images.Flavour(engines=(llmserver_api.Backend.LLAMA_CPP,), accelerators=("amd.com/gpu",)),
    })
    found = choice(settings, resources={"gpus": 1, "gpuResourceName": "amd.com/gpu"})
    assert (found.image, found.flavour) == (None, "rocm")
    assert "runtime.images.rocm.repository" in found.reason


def test_spec_image_overrides_and_the_operator_default_gpu_resource_applies() -> None:
    override = choice(image="reg.example/mine@sha256:" + "a" * 64, backend="vllm",
                      source={"huggingFace": {"repo": "a/b"}})
    assert override.image == "reg.example/mine@sha256:" + "a" * 64 and override.flavour is None
    amd = settings_mod.Settings(gpu_resource_name="amd.com/gpu", runtime_images={
        "rocm": {"image": "r/rocm:1", "engines": ["llama-cpp"], "accelerators": ["amd.com/gpu"]}})
    # the server names no GPU resource: the operator's (the chart profile's) applies, not nvidia
    assert choice(amd, resources={"gpus": 1}).flavour == "rocm"
    built = deployment.build_deployment(server(resources={"gpus": 1}), amd)
    assert "amd.com/gpu" in built["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_auto_left_to_the_runtime_gets_the_richest_image_for_the_accelerator() -> None:
    pvc = {"pvc": {"claimName": "models", "path": "m"}}
    assert choice(backend="auto", source=pvc).flavour == "cpu"
    assert choice(backend="auto", source=pvc, resources={"gpus": 1}).flavour == "cuda"


def test_choice_is_independent_of_catalog_order_and_reports_to_status() -> None:
    a = {"image": "r/a:1", "engines": ["llama-cpp"]}
    b = {"image": "r/b:1", "engines": ["llama-cpp", "transformers"]}
    first = choice(settings_mod.Settings(runtime_images={"b": b, "a": a}))
    second = choice(settings_mod.Settings(runtime_images={"a": a, "b": b}))
    assert first == second and first.flavour == "a"
    assert first.to_status() == {"flavour": "a", "image": "r/a:1", "imageReason": first.reason}


def test_catalog_entries_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError, match="auto is not an engine"):
        images.Flavour(image="x", engines=("auto",))
    with pytest.raises(pydantic.ValidationError):
        images.Flavour(image="x", engines=())
    with pytest.raises(pydantic.ValidationError):
        images.Flavour(image="x", engines=("tensorrt",))
