"""The `small` generated model (throughput benches): big enough, seeded, and it runs in both engines.

`tiny` decodes a token in ~70 µs, so a bench on it measures Python overhead; `small` must carry
at least 50M parameters so that matrix work dominates a decode step. The GGUF and the HF
directory hold the same weights, so llama.cpp and transformers must decode the same greedy tokens
(the file's layout, not just its header, is right); the size option must not leak to other kinds.
"""

from __future__ import annotations

import hashlib
import pathlib

import pytest
import torch
import transformers

from llmserver_runtime.tiny_models import bpe, cli, gguf_model, llama

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the test environment")

pytestmark = pytest.mark.timeout(600)

GGML_TYPE_F32 = 0
STEPS = 8


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("small")


@pytest.fixture(scope="module")
def small_gguf(small_dir: pathlib.Path) -> pathlib.Path:
    return cli.generate("gguf", small_dir / "gguf", seed=0, size="small")


@pytest.fixture(scope="module")
def small_hf(small_dir: pathlib.Path) -> pathlib.Path:
    return cli.generate("hf-causal", small_dir / "hf", seed=0, size="small")


def test_small_shape_has_at_least_50m_parameters_and_tiny_is_unchanged() -> None:
    small = llama.shape_of("small", bpe.VOCAB_SIZE)
    assert small.parameter_count >= 50_000_000
    assert small.head_dim == 64  # vLLM's CPU attention refuses smaller heads
    assert llama.shape_of("tiny", bpe.VOCAB_SIZE) == llama.LlamaShape(vocab_size=bpe.VOCAB_SIZE)
    weights = llama.random_weights(llama.shape_of("tiny", bpe.VOCAB_SIZE), 0)
    assert sum(w.size for w in weights.values()) == llama.shape_of("tiny", bpe.VOCAB_SIZE).parameter_count


def test_small_gguf_is_named_apart_and_deterministic(small_gguf: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert small_gguf.name == gguf_model.SMALL_FILE_NAME
    again = cli.generate("gguf", tmp_path, seed=0, size="small")
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(small_gguf.read_bytes()).digest()
    assert small_gguf.stat().st_size >= 50_000_000 * 4  # f32 weights


def test_size_applies_only_to_causal_kinds(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="--size small exists only for"):
        cli.generate("hf-rerank", tmp_path, size="small")
    with pytest.raises(ValueError, match="unknown model size"):
        cli.generate("gguf", tmp_path, size="huge")


def test_small_model_decodes_the_same_greedy_tokens_in_llama_cpp_and_transformers(
    small_gguf: pathlib.Path, small_hf: pathlib.Path
) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(small_hf)
    model = transformers.AutoModelForCausalLM.from_pretrained(small_hf).eval()
    assert model.num_parameters() >= 50_000_000
    prompt = tokenizer("Hello, how are you?").input_ids
    expected = model.generate(
        torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        max_new_tokens=STEPS, min_new_tokens=STEPS, do_sample=False,
    )[0, len(prompt):].tolist()
    del model
    llm = llama_cpp.Llama(
        model_path=str(small_gguf), n_ctx=128, n_threads=1, verbose=False, type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32
    )
    try:
        assert llm.n_vocab() == len(tokenizer)
        produced: list[int] = []
        for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
            produced.append(token)
            if len(produced) == STEPS:
                break
        text = llm.create_completion("Hello", max_tokens=4, temperature=0.0)
    finally:
        llm.close()
    assert len(expected) == STEPS
    assert produced == expected
    assert text["usage"]["completion_tokens"] >= 1
