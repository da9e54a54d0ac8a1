"""Every manifest in examples/valid deploys as written with the default runtime image catalog.

Each example has an explicit expectation below (a new example without one fails the suite): the
flavour whose image its pods run, and the engine that flavour must carry for the example's
accelerator; or the `NoRuntimeImage` refusal (and the flavour that would fit it); or no pods at all
(Proxy mode, a registered Mac). The check goes through `llmserver render -f FILE`, which runs the
operator's own pure builders, and through the operator's resolver for `backend: auto` with a
Hugging Face source, fed the repo's file list (modelled on the real repo, no Hub call).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import llmserver_api
import pytest
import yaml
from click.testing import CliRunner
from llmserver_api import detection
from llmserver_cli import cli
from llmserver_operator import images, resolution
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import deployment, plan

pytestmark = pytest.mark.timeout(120)

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples" / "valid"
Backend = llmserver_api.Backend
NVIDIA = "nvidia.com/gpu"


@dataclasses.dataclass(frozen=True)
class Pods:
    """Pods run `flavour`'s image, which must carry `engine` for `accelerator` (None: CPU)."""

    flavour: str
    engine: Backend
    accelerator: str | None = None


@dataclasses.dataclass(frozen=True)
class Refused:
    """No default flavour fits: `NoRuntimeImage`; adding `fix` under runtime.images does."""

    accelerator: str
    fix: images.Flavour


@dataclasses.dataclass(frozen=True)
class NoPods:
    """Proxy mode or a registered Mac: nothing runs in the cluster."""

    placement: plan.Placement


@dataclasses.dataclass(frozen=True)
class NotAServer:
    """Another kind of object (an AppleNode): nothing to render."""

    kind: str


ROCM = images.Flavour(image="registry.example/llmserver-runtime-rocm:0.1.0", engines=(Backend.VLLM,),
                      accelerators=("amd.com/gpu",))
# For `backend: auto`, `engine` is the backend the operator's resolver decides from the repo files
# (HUB_REPOS); a PVC source is decided by the runtime at start, so its flavour must carry every
# engine that runs off a Mac (checked in test_auto_on_a_pvc_gets_the_richest_image).
EXPECTED: dict[str, Pods | Refused | NoPods | NotAServer] = {
    "applenode-mac-studio.yaml": NotAServer("AppleNode"),
    "auto-minimal.yaml": Pods("cpu", Backend.TRANSFORMERS),
    "auto-on-mac.yaml": NoPods(plan.Placement.APPLE),
    "embeddings-bge.yaml": Pods("cpu", Backend.TRANSFORMERS),
    "gpu-embeddings-tolerations.yaml": Pods("cuda", Backend.TRANSFORMERS, NVIDIA),
    "llama-cpp-gpu-offload.yaml": Pods("cuda", Backend.LLAMA_CPP, NVIDIA),
    "llama-cpp-qwen-gguf.yaml": Pods("cpu", Backend.LLAMA_CPP),
    "mlx-lm-mac.yaml": NoPods(plan.Placement.APPLE),
    "proxy-in-cluster.yaml": NoPods(plan.Placement.PROXY),
    "proxy-openai.yaml": NoPods(plan.Placement.PROXY),
    "pvc-source-directory-auto.yaml": Pods("cuda", Backend.AUTO, NVIDIA),
    "pvc-source-gguf.yaml": Pods("cpu", Backend.LLAMA_CPP),
    "rerank-bge-reranker.yaml": Pods("cpu", Backend.TRANSFORMERS),
    "s3-source-gguf.yaml": Pods("cpu", Backend.LLAMA_CPP),
    "scaled-to-zero.yaml": Pods("cuda", Backend.VLLM, NVIDIA),
    "autoscaling-gpu-with-fallback.yaml": Pods("cuda", Backend.VLLM, NVIDIA),
    "transformers-4bit.yaml": Pods("cuda", Backend.TRANSFORMERS, NVIDIA),
    "transformers-8bit-cpu.yaml": Pods("cpu", Backend.TRANSFORMERS),
    "url-source-gguf.yaml": Pods("cpu", Backend.LLAMA_CPP),
    "trust-remote-code-vision.yaml": Pods("cuda", Backend.TRANSFORMERS, NVIDIA),
    "vision-mlx-vlm-mac.yaml": NoPods(plan.Placement.APPLE),
    "vllm-amd-gpu.yaml": Refused("amd.com/gpu", ROCM),
    "vllm-extra-args.yaml": Pods("cuda", Backend.VLLM, NVIDIA),
    "vllm-llama-70b-tensor-parallel.yaml": Pods("cuda", Backend.VLLM, NVIDIA),
    "vllm-lora-adapters.yaml": Pods("cuda", Backend.VLLM, NVIDIA),
}

# The Hub's answer for the `backend: auto` examples' repos, modelled on the real repos' file lists.
HUB_REPOS: dict[str, detection.ModelFiles] = {
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": detection.ModelFiles(
        files=(".gitattributes", "README.md", "config.json", "eval_results.json", "generation_config.json",
               "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer.model",
               "tokenizer_config.json"),
        configs={"config.json": {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}},
        name="TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        tags=("transformers", "safetensors", "llama", "text-generation", "conversational"),
        library_name="transformers"),
    "mlx-community/Qwen2.5-7B-Instruct-4bit": detection.ModelFiles(
        files=(".gitattributes", "README.md", "added_tokens.json", "config.json", "merges.txt",
               "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
               "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json",
               "tokenizer_config.json", "vocab.json"),
        configs={"config.json": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                                 "quantization": {"group_size": 64, "bits": 4}}},
        name="mlx-community/Qwen2.5-7B-Instruct-4bit",
        tags=("mlx", "safetensors", "qwen2", "text-generation", "conversational"),
        library_name="mlx"),
}


def _documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]


def _server(name: str) -> llmserver_api.LLMServer:
    [document] = _documents(name)
    return llmserver_api.LLMServer.model_validate(document)


def _resolved(server: llmserver_api.LLMServer) -> llmserver_api.LLMServer:
    """The server the operator builds from: `backend: auto` decided by its resolver from HUB_REPOS."""
    def fetch(repo: str, revision: str, token: str | None, file: str | None) -> detection.ModelFiles:
        del revision, token, file
        return HUB_REPOS[repo]

    result = resolution.Resolver(kube=None, fetch=fetch).resolve(server)  # type: ignore[arg-type]
    assert result.blocked is None, result.blocked
    return result.server


def _render(name: str, catalog: dict[str, images.Flavour] | None = None,
            monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, list[dict[str, Any]]]:
    """Exit code, output and printed objects of `llmserver render -f` with this catalog (None: default)."""
    assert monkeypatch is not None
    monkeypatch.delenv("LLMSERVER_OPERATOR_RUNTIME_IMAGES", raising=False)
    if catalog is not None:
        monkeypatch.setenv("LLMSERVER_OPERATOR_RUNTIME_IMAGES",
                           json.dumps({key: flavour.model_dump(mode="json") for key, flavour in catalog.items()}))
    result = CliRunner().invoke(cli.main, ["render", "-f", str(EXAMPLES / name)])
    printed = [doc for doc in yaml.safe_load_all(result.output.split("Error:")[0]) if doc]
    return result.exit_code, result.output, printed


def _pod_spec(printed: list[dict[str, Any]]) -> dict[str, Any]:
    [deployment_] = [doc for doc in printed if doc["kind"] == "Deployment"]
    return deployment_["spec"]["template"]["spec"]


def test_every_example_has_an_expectation() -> None:
    on_disk = {path.name for path in EXAMPLES.glob("*.y*ml")}
    assert on_disk - EXPECTED.keys() == set(), "add an expectation for the new example(s) to EXPECTED"
    assert EXPECTED.keys() - on_disk == set(), "EXPECTED names examples that no longer exist"


PODS = sorted(name for name, want in EXPECTED.items() if isinstance(want, Pods))


@pytest.mark.parametrize("name", PODS)
def test_pods_run_an_image_that_carries_the_engine(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    want = EXPECTED[name]
    assert isinstance(want, Pods)
    catalog = images.default_catalog()
    flavour = catalog[want.flavour]
    # the flavour carries the engine for this accelerator
    assert flavour.accelerators == ((want.accelerator,) if want.accelerator else ())
    assert want.engine is Backend.AUTO or want.engine in flavour.engines

    # the operator's choice, on the server its resolver decided
    server = _resolved(_server(name))
    assert server.spec.backend == want.engine
    choice = deployment.runtime_image(server, settings_mod.Settings(runtime_images=catalog))
    assert (choice.flavour, choice.image) == (want.flavour, flavour.image), choice.reason

    # and what `llmserver render` prints for the manifest as written
    code, output, printed = _render(name, monkeypatch=monkeypatch)
    assert code == 0, output
    assert f"image {flavour.image} (flavour {want.flavour} carries" in output
    pod = _pod_spec(printed)
    [container] = pod["containers"]
    assert container["image"] == flavour.image
    limits = (container.get("resources") or {}).get("limits") or {}
    if want.accelerator:
        assert limits.get(want.accelerator) == str(server.spec.resources.gpus)
    else:
        assert not [key for key in limits if key.endswith("/gpu")], limits


def test_auto_on_a_pvc_gets_the_richest_image() -> None:
    """The runtime decides among its image's engines: the flavour must carry every engine that runs
    off a Mac, so whatever the files on the claim turn out to be, the pod can serve them."""
    server = _server("pvc-source-directory-auto.yaml")
    assert server.spec.source is not None and server.spec.source.pvc is not None
    off_mac = {b for b in Backend if b not in (Backend.AUTO, Backend.MLX, Backend.MLX_VLM)}
    assert off_mac <= set(images.default_catalog()["cuda"].engines)


def test_auto_on_cpu_resolves_from_the_repo_files() -> None:
    resolved = resolution.Resolver(kube=None, fetch=lambda repo, *_: HUB_REPOS[repo]).resolve(  # type: ignore[arg-type]
        _server("auto-minimal.yaml"))
    assert resolved.condition is not None and resolved.condition[:2] == ("True", "Detected")
    assert resolved.server.spec.capabilities == [llmserver_api.Capability.TEXT_GENERATION]


REFUSED = sorted(name for name, want in EXPECTED.items() if isinstance(want, Refused))


@pytest.mark.parametrize("name", REFUSED)
def test_no_default_flavour_fits_until_one_is_added(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    want = EXPECTED[name]
    assert isinstance(want, Refused)
    code, output, printed = _render(name, monkeypatch=monkeypatch)
    assert code == 1
    assert f": {images.REASON}: no runtime image flavour carries the" in output
    assert want.accelerator in output and images.CHART_VALUE in output
    assert printed == []  # no objects for a refused server

    catalog = {**images.default_catalog(), "rocm": want.fix}
    code, output, printed = _render(name, catalog, monkeypatch=monkeypatch)
    assert code == 0, output
    [container] = _pod_spec(printed)["containers"]
    assert container["image"] == want.fix.image
    assert container["resources"]["limits"][want.accelerator] == str(_server(name).spec.resources.gpus)


NO_PODS = sorted(name for name, want in EXPECTED.items() if isinstance(want, NoPods))


@pytest.mark.parametrize("name", NO_PODS)
def test_proxy_and_mac_examples_have_no_pods(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    want = EXPECTED[name]
    assert isinstance(want, NoPods)
    server = _resolved(_server(name))
    assert plan.placement(server.spec) is want.placement
    if want.placement is plan.Placement.APPLE:
        assert server.spec.backend in (Backend.MLX, Backend.MLX_VLM)
    code, output, printed = _render(name, monkeypatch=monkeypatch)
    assert code == 0, output
    assert printed == []
    assert ("Proxy mode, no objects" if want.placement is plan.Placement.PROXY
            else "runs on a registered Mac, no Kubernetes workload") in output


@pytest.mark.parametrize("name", sorted(name for name, want in EXPECTED.items() if isinstance(want, NotAServer)))
def test_other_kinds_render_nothing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    want = EXPECTED[name]
    assert isinstance(want, NotAServer)
    assert [doc["kind"] for doc in _documents(name)] == [want.kind]
    code, output, _ = _render(name, monkeypatch=monkeypatch)
    assert code == 1 and "no LLMServer found" in output
