"""LoRA adapters on mlx-lm for real (mlx[cpu] here, Metal on a Mac): `one` a peft adapter
(converted at load), `two` an adapter in mlx-lm's own layout, each a view over the shared base
weights; mlx loads adapters only at start, so a live load is refused (testkit.adapter_checks)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from testkit import adapter_checks, lora_adapters, runtime_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "tiny-mlx"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> pathlib.Path:
    """The trusted adapter root: one (peft, seed 1), two (mlx-lm layout, seed 5), three (peft, seed 3)."""
    path = tmp_path_factory.mktemp("mlx-adapters")
    lora_adapters.hf_lora(tiny_hf_causal, path / "one", 1)
    lora_adapters.mlx_lora(tiny_hf_causal, path / "two", 5)
    lora_adapters.hf_lora(tiny_hf_causal, path / "three", 3)
    return path


@pytest.fixture(scope="module")
def server(root: pathlib.Path, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:
    environment = runtime_server.env(LLMSERVER_ADAPTER_ROOT=str(root))
    with runtime_server.start(
        root, "mlx", tiny_hf_causal, MODEL, "--adapter", f"one={root / 'one'}", "--adapter", f"two={root / 'two'}",
        environment=environment, ready_timeout=300,
    ) as started:  # fmt: skip
        yield started


class TestAdapters(adapter_checks.AdapterSurface):
    model = MODEL
    live = False


def test_the_peft_adapter_gives_the_tokens_transformers_with_peft_gives(
    root: pathlib.Path, tiny_hf_causal: str
) -> None:
    """The conversion (lora_a = A^T, lora_b = B^T, scale alpha/r) is exact: same greedy tokens; the
    view shares the base model's weight arrays and leaves the base unwrapped."""
    import mlx.core as mx
    import mlx_lm
    import peft
    import torch
    import transformers
    from llmserver_backends import mlx_adapters

    model, tokenizer = mlx_lm.load(tiny_hf_causal)
    view = mlx_adapters.adapted(model, str(root / "one"))
    base_attention, view_attention = model.model.layers[0].self_attn, view.model.layers[0].self_attn
    assert view_attention.q_proj.linear.weight is base_attention.q_proj.weight  # shared, not copied
    assert view.model.embed_tokens.weight is model.model.embed_tokens.weight
    assert "lora_a" not in base_attention.q_proj
    prompt = list(tokenizer.encode(adapter_checks.PROMPT))
    ids = mx.array(prompt)[None]
    tokens = []
    for _ in range(8):
        token = int(mx.argmax(view(ids)[0, -1]).item())
        tokens.append(token)
        ids = mx.concatenate([ids, mx.array([[token]])], axis=1)
    reference = peft.PeftModel.from_pretrained(
        transformers.AutoModelForCausalLM.from_pretrained(tiny_hf_causal, dtype=torch.float32), str(root / "one")
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
