"""The transformers backend called directly, on the tiny models and the real all-MiniLM-L6-v2,
checked against transformers' own generate(), sentence-transformers and CrossEncoder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
import torch
import transformers

import llmserver_api
from llmserver_backends import base, registry
from testkit import models

pytestmark = pytest.mark.timeout(300)

Cap = llmserver_api.Capability
GREEDY = base.SamplingParams(max_tokens=24, temperature=0.0)


def _load(path: str, **kwargs: object) -> base.ModelBackend:
    backend = registry.create("transformers", base.BackendConfig(model_path=path, served_model_name="m", **kwargs))
    asyncio.run(backend.load())
    return backend


def _collect(stream: AsyncIterator[base.Delta]) -> list[base.Delta]:
    async def run() -> list[base.Delta]:
        return [delta async for delta in stream]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def causal() -> Iterator[base.ModelBackend]:
    backend = _load(models.tiny_model_path("hf-causal"))
    yield backend
    asyncio.run(backend.unload())


@pytest.fixture(scope="module")
def hf() -> tuple[transformers.PreTrainedTokenizerBase, transformers.PreTrainedModel]:
    path = models.tiny_model_path("hf-causal")
    return transformers.AutoTokenizer.from_pretrained(path), transformers.AutoModelForCausalLM.from_pretrained(path).eval()


def _hf_greedy(hf, prompt_ids: list[int], steps: int) -> list[int]:
    _, model = hf
    output = model.generate(
        torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
        max_new_tokens=steps, do_sample=False,
    )  # fmt: skip
    return output[0, len(prompt_ids) :].tolist()


def test_capabilities_and_context_come_from_the_config(causal) -> None:
    assert causal.capabilities == {Cap.TEXT_GENERATION}
    assert causal.context_length == 2048
    assert causal.max_concurrency == 8  # transformers.DEFAULT_MAX_BATCH_SIZE: requests decoded together


def test_chat_renders_the_template_and_decodes_like_generate(causal, hf) -> None:
    tokenizer, _ = hf
    messages = [base.ChatMessage("system", "Be brief."), base.ChatMessage("user", "What is two plus two?")]
    deltas = _collect(causal.chat(messages, GREEDY))
    rendered = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer(rendered, add_special_tokens=False).input_ids
    expected = _hf_greedy(hf, prompt_ids, GREEDY.max_tokens)
    assert deltas[-1].prompt_tokens == len(prompt_ids)
    assert deltas[-1].completion_tokens == len(expected)
    assert "".join(d.text for d in deltas) == tokenizer.decode(expected, skip_special_tokens=True)


@pytest.mark.parametrize("prompt", ["Once upon a time", "Hello, how are you?"])
def test_stream_counts_every_token_and_ends_like_generate(causal, hf, prompt: str) -> None:
    tokenizer, _ = hf
    steps = 12
    deltas = _collect(causal.complete(prompt, base.SamplingParams(max_tokens=steps, temperature=0.0)))
    expected = _hf_greedy(hf, tokenizer(prompt).input_ids, steps)  # stops early at an end-of-turn token
    end_ids = set(hf[1].generation_config.eos_token_id)
    n = len(expected) - 1 if expected[-1] in end_ids else len(expected)  # generate() keeps the EOS
    counts = [d.completion_tokens for d in deltas]
    assert counts[:n] == list(range(1, n + 1))
    if n == steps:
        assert len(deltas) == steps and deltas[-1].finish_reason == "length"
    else:  # the end-of-turn token ends the stream with "stop" and is not counted or shown
        assert len(deltas) == n + 1 and counts[-1] == n and deltas[-1].finish_reason == "stop"
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert all(d.prompt_tokens == causal.count_tokens(prompt) == len(tokenizer(prompt).input_ids) for d in deltas)
    assert "".join(d.text for d in deltas) == tokenizer.decode(expected[:n], skip_special_tokens=True)


def test_seed_makes_sampling_repeatable(causal) -> None:
    def sample(seed: int) -> str:
        params = base.SamplingParams(max_tokens=16, temperature=1.0, top_p=0.9, seed=seed)
        return "".join(d.text for d in _collect(causal.complete("The weather is", params)))

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_leaving_the_stream_early_stops_generation(causal) -> None:
    async def run() -> str:
        stream = causal.complete("Hello", base.SamplingParams(max_tokens=2000, temperature=1.0, seed=1))
        taken = [await anext(stream) for _ in range(3)]
        # aclose waits for the worker: it returns only once generation really stopped, long before
        # 2000 tokens (the bound is generous; it would only trip if cancellation were ignored).
        await asyncio.wait_for(stream.aclose(), timeout=60)
        after = [d async for d in causal.complete("Hi", base.SamplingParams(max_tokens=2, temperature=0.0))]
        return f"{len(taken)}:{after[-1].completion_tokens}"

    assert asyncio.run(run()) == "3:2"


def test_context_length_and_images_are_refused(causal) -> None:
    with pytest.raises(base.ContextLengthExceeded, match="maximum context length is 2048"):
        _collect(causal.complete("Hello", base.SamplingParams(max_tokens=5000)))
    image = base.ImagePart(data=b"\x89PNG")
    with pytest.raises(base.UnsupportedRequest, match="images"):
        _collect(causal.chat([base.ChatMessage("user", "what is this?", images=(image,))], GREEDY))
    with pytest.raises(base.UnsupportedRequest, match="Embeddings"):
        asyncio.run(causal.embed(["x"]))


def test_causal_model_can_also_embed_when_asked() -> None:
    backend = _load(models.tiny_model_path("hf-causal"), capabilities=frozenset({Cap.TEXT_GENERATION, Cap.EMBEDDINGS}))
    try:
        result = asyncio.run(backend.embed(["hello world", "a much longer sentence about rivers", "hello world"]))
    finally:
        asyncio.run(backend.unload())
    vectors = np.array(result.vectors)
    assert vectors.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)  # padding in the batch changes nothing


def test_minilm_embeddings_equal_sentence_transformers() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers", reason="in the transformers extra")
    path = models.minilm_path()
    backend = _load(path)
    texts = ["A man is eating food.", "Short.", "A considerably longer sentence, padded against the others in the batch."]
    try:
        assert backend.capabilities == {Cap.EMBEDDINGS}
        result = asyncio.run(backend.embed(texts))
        with pytest.raises(base.ContextLengthExceeded, match="at most 256 tokens"):
            asyncio.run(backend.embed(["word " * 300]))
    finally:
        asyncio.run(backend.unload())
    reference = sentence_transformers.SentenceTransformer(path, device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(np.array(result.vectors), reference, atol=1e-5)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    assert result.prompt_tokens == sum(len(ids) for ids in tokenizer(texts).input_ids)


def test_rerank_equals_cross_encoder() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers", reason="in the transformers extra")
    path = models.tiny_model_path("hf-rerank")
    backend = _load(path)
    query = "what is the capital of france"
    documents = ["Paris is the capital of France.", "The river flows to the sea.", "Hello!", "Two plus two is four."]
    try:
        assert backend.capabilities == {Cap.RERANK}
        result = asyncio.run(backend.rerank(query, documents))
    finally:
        asyncio.run(backend.unload())
    reference = sentence_transformers.CrossEncoder(path, device="cpu").predict([(query, d) for d in documents])
    np.testing.assert_allclose(result.scores, reference, atol=1e-5)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    assert result.prompt_tokens == sum(len(tokenizer(query, d).input_ids) for d in documents)


@pytest.mark.parametrize(("option", "layer"), [("load_in_4bit", "Linear4bit"), ("load_in_8bit", "Linear8bitLt")])
def test_bitsandbytes_quantised_load_generates(option: str, layer: str) -> None:
    backend = _load(models.tiny_model_path("hf-causal"), options={option: True})
    try:
        q_proj = backend._model.model.layers[0].self_attn.q_proj  # noqa: SLF001 - proves the load is quantised
        assert type(q_proj).__name__ == layer
        deltas = _collect(backend.chat([base.ChatMessage("user", "Hello!")], base.SamplingParams(max_tokens=8, temperature=0)))
    finally:
        asyncio.run(backend.unload())
    assert deltas[-1].completion_tokens >= 1 and deltas[-1].finish_reason in ("stop", "length")


def test_dtype_option_and_its_errors() -> None:
    backend = _load(models.tiny_model_path("hf-causal"), options={"dtype": "bfloat16"})
    try:
        assert backend._model.dtype == torch.bfloat16  # noqa: SLF001
        assert _collect(backend.complete("Hi", base.SamplingParams(max_tokens=3, temperature=0)))[-1].completion_tokens == 3
    finally:
        asyncio.run(backend.unload())
    with pytest.raises(ValueError, match="dtype must be one of"):
        _load(models.tiny_model_path("hf-causal"), options={"dtype": "float8"})
    with pytest.raises(base.BackendError, match="does not support Vision"):
        _load(models.tiny_model_path("hf-causal"), capabilities=frozenset({Cap.TEXT_GENERATION, Cap.VISION}))
