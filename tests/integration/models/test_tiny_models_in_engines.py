"""The tiny models load in the real engines and agree with each other.

The GGUF and the HF directory hold the same weights (same seed), so llama.cpp and transformers
must tokenize identically and decode the same greedy tokens: that proves the GGUF's tokenizer
metadata and its Q/K permutation are right, not just that the file parses.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import transformers

from testkit import models

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the test environment")

pytestmark = pytest.mark.timeout(300)

TEXTS = [
    "Hello, how are you?",
    "<|im_start|>user\nWhat is two plus two?<|im_end|>\n<|im_start|>assistant\n",
    " The quick  brown fox's dog, 42 héllo\n\n{braces} <tags>",
]
GGML_TYPE_F32 = 0


@pytest.fixture(scope="module")
def hf_tokenizer() -> transformers.PreTrainedTokenizerBase:
    return transformers.AutoTokenizer.from_pretrained(models.tiny_model_path("hf-causal"))


@pytest.fixture(scope="module")
def hf_model() -> transformers.PreTrainedModel:
    return transformers.AutoModelForCausalLM.from_pretrained(models.tiny_model_path("hf-causal")).eval()


@pytest.fixture(scope="module")
def gguf_llm() -> Iterator[llama_cpp.Llama]:
    # f32 KV cache: the default f16 cache rounds enough to flip a near-tie (logit gap 3e-4) after
    # ~25 random-model tokens, which would test rounding, not the file's correctness.
    llm = llama_cpp.Llama(
        model_path=models.tiny_model_path("gguf"), n_ctx=512, verbose=False, type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32
    )
    yield llm
    llm.close()


@pytest.mark.parametrize("text", TEXTS)
def test_gguf_tokenizes_exactly_like_the_hf_tokenizer(gguf_llm, hf_tokenizer, text: str) -> None:
    expected = hf_tokenizer(text).input_ids
    assert gguf_llm.tokenize(text.encode(), add_bos=False, special=True) == expected
    assert gguf_llm.detokenize(expected, special=True).decode() == text


@pytest.mark.parametrize("text", TEXTS)
def test_gguf_greedy_tokens_equal_transformers(gguf_llm, hf_tokenizer, hf_model, text: str) -> None:
    prompt = hf_tokenizer(text).input_ids
    steps = 32
    expected = hf_model.generate(
        torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        max_new_tokens=steps, do_sample=False,
    )[0, len(prompt):].tolist()
    produced: list[int] = []
    for token in gguf_llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        produced.append(token)
        if token in (gguf_llm.token_eos(), hf_tokenizer.pad_token_id) or len(produced) == steps:
            break
    assert produced == expected


def test_gguf_carries_chatml_template_and_special_ids(gguf_llm, hf_tokenizer) -> None:
    metadata = gguf_llm.metadata
    assert metadata["tokenizer.chat_template"] == hf_tokenizer.chat_template
    assert gguf_llm.token_eos() == hf_tokenizer.convert_tokens_to_ids("<|im_end|>")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
    result = gguf_llm.create_chat_completion(messages=messages, max_tokens=4, temperature=0.0)
    hf_prompt = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert result["usage"]["prompt_tokens"] == len(hf_tokenizer(hf_prompt).input_ids)
    assert 0 < result["usage"]["completion_tokens"] <= 8


def test_gguf_embeddings_are_mean_pooled_vectors() -> None:
    llm = llama_cpp.Llama(model_path=models.tiny_model_path("gguf"), embedding=True, n_ctx=256, verbose=False)
    try:
        vectors = llm.embed(["hello world", "the capital of France is Paris", "hello world"])
    finally:
        llm.close()
    assert [len(v) for v in vectors] == [128, 128, 128]  # one pooled vector each, not per token
    assert vectors[0] == pytest.approx(vectors[2])
    assert vectors[0] != pytest.approx(vectors[1])


def test_hf_causal_loads_in_mlx_lm_and_agrees_with_transformers(hf_tokenizer, hf_model) -> None:
    mlx_lm = pytest.importorskip("mlx_lm", reason="mlx[cpu] and mlx-lm are part of the test environment")
    import mlx.core as mx

    model, tokenizer = mlx_lm.load(models.tiny_model_path("hf-causal"))
    prompt = hf_tokenizer(TEXTS[0]).input_ids
    assert tokenizer.encode(TEXTS[0]) == prompt
    logits = np.array(model(mx.array([prompt]))[0, -1].astype(mx.float32))
    with torch.no_grad():
        expected = hf_model(torch.tensor([prompt])).logits[0, -1].numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)


def test_rerank_model_works_in_transformers_and_cross_encoder() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers", reason="part of the transformers extra")
    path = models.tiny_model_path("hf-rerank")
    query = "what is the capital of france"
    documents = ["Paris is the capital of France.", "The river flows to the sea.", "Hello!"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model, info = transformers.AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    batch = tokenizer([query] * len(documents), documents, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model.eval()(**batch).logits.squeeze(-1)
    assert logits.shape == (len(documents),)
    scores = sentence_transformers.CrossEncoder(path).predict([(query, d) for d in documents])
    np.testing.assert_allclose(scores, torch.sigmoid(logits).numpy(), rtol=1e-4, atol=1e-5)
    assert float(np.ptp(scores)) > 0.05  # documents get visibly different scores
