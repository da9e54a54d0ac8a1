"""LoRA adapters on mlx-lm for real (mlx[cpu] here, Metal on a Mac): a peft adapter (converted at
load) and an adapter in mlx-lm's own layout on the tiny Llama, each a view over the shared base
weights. Greedy decoding, so every difference is the adapter's. mlx loads adapters only at start:
the live endpoints answer 400."""

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

MODEL = "tiny-mlx"
PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> pathlib.Path:
    path = tmp_path_factory.mktemp("mlx-adapters")
    lora_adapters.hf_lora(tiny_hf_causal, path / "peft", 1)
    lora_adapters.mlx_lora(tiny_hf_causal, path / "native", 5)
    return path


@pytest.fixture(scope="module")
def server(root: pathlib.Path, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:
    environment = runtime_server.env(LLMSERVER_ADAPTER_ROOT=str(root))
    with runtime_server.start(
        root, "mlx", tiny_hf_causal, MODEL, "--adapter", f"peft={root / 'peft'}", "--adapter", f"native={root / 'native'}",
        environment=environment, ready_timeout=300,
    ) as started:  # fmt: skip
        yield started


def _greedy(client: openai.OpenAI, model: str) -> str:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=10, temperature=0)
    assert answer.model == model
    return answer.choices[0].text


def test_adapters_answer_differently_from_the_base_and_each_other(server: runtime_server.RuntimeServer) -> None:
    client = server.client()
    base = _greedy(client, MODEL)
    peft, native = _greedy(client, f"{MODEL}:peft"), _greedy(client, f"{MODEL}:native")
    assert len({base, peft, native}) == 3
    assert base == _greedy(client, MODEL)  # the views left the base model untouched
    listed = {model.id: model.model_dump() for model in client.models.list()}
    assert listed[f"{MODEL}:native"]["parent"] == MODEL
    with pytest.raises(openai.NotFoundError):
        _greedy(client, f"{MODEL}:absent")


def test_live_loads_are_refused_naming_the_restart(server: runtime_server.RuntimeServer, root: pathlib.Path) -> None:
    request = urllib.request.Request(
        server.url + "/v1/load_lora_adapter",
        data=json.dumps({"lora_name": "more", "lora_path": str(root / "peft")}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "only at start" in refused.value.read().decode()


def test_the_peft_adapter_gives_the_tokens_transformers_with_peft_gives(root: pathlib.Path, tiny_hf_causal: str) -> None:
    """The conversion (lora_a = A^T, lora_b = B^T, scale alpha/r) is exact: same greedy tokens."""
    import mlx.core as mx
    import mlx_lm
    import peft
    import torch
    import transformers
    from llmserver_backends import mlx_adapters

    model, tokenizer = mlx_lm.load(tiny_hf_causal)
    view = mlx_adapters.adapted(model, str(root / "peft"))
    base_attention, view_attention = model.model.layers[0].self_attn, view.model.layers[0].self_attn
    assert view_attention.q_proj.linear.weight is base_attention.q_proj.weight  # shared, not copied
    assert view.model.embed_tokens.weight is model.model.embed_tokens.weight
    assert "lora_a" not in base_attention.q_proj  # the base model stays unwrapped
    prompt = list(tokenizer.encode(PROMPT))
    ids = mx.array(prompt)[None]
    tokens = []
    for _ in range(8):
        token = int(mx.argmax(view(ids)[0, -1]).item())
        tokens.append(token)
        ids = mx.concatenate([ids, mx.array([[token]])], axis=1)
    reference = peft.PeftModel.from_pretrained(
        transformers.AutoModelForCausalLM.from_pretrained(tiny_hf_causal, dtype=torch.float32), str(root / "peft")
    )
    with torch.no_grad():
        expected = reference.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False)[0, len(prompt) :]
    assert tokens == expected.tolist()


def test_a_folder_without_an_adapter_fails_the_start(tmp_path: pathlib.Path, tiny_hf_causal: str) -> None:
    (tmp_path / "empty").mkdir()
    server = runtime_server.launch(tmp_path, "mlx", tiny_hf_causal, MODEL, "--adapter", f"x={tmp_path / 'empty'}")
    try:
        assert server.proc.wait(120) == 1
    finally:
        server.stop()
    assert "holds no adapter_config.json" in server.output()
