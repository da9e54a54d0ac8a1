"""The fake backend is deterministic and its usage is exact under its own tokenizer."""

from __future__ import annotations

import pytest
from llmserver_backends import base, fake, registry


def _backend(**options: object) -> fake.FakeBackend:
    backend = registry.create("fake", base.BackendConfig(model_path="-", served_model_name="f", options=dict(options)))
    assert isinstance(backend, fake.FakeBackend)
    return backend


async def _text(stream) -> tuple[str, base.Delta]:  # type: ignore[no-untyped-def]
    text, last = "", None
    async for delta in stream:
        text, last = text + delta.text, delta
    assert last is not None
    return text, last


async def test_same_prompt_and_seed_give_the_same_text_and_exact_counts() -> None:
    backend = _backend()
    params = base.SamplingParams(max_tokens=7, seed=3)
    first, last = await _text(backend.complete("a b c", params))
    again, _ = await _text(backend.complete("a b c", params))
    other, _ = await _text(backend.complete("a b c", base.SamplingParams(max_tokens=7, seed=4)))
    assert first == again != other
    assert last.finish_reason == "length"
    assert last.prompt_tokens == backend.count_tokens("a b c") == 3
    assert last.completion_tokens == backend.count_tokens(first) == 7


async def test_natural_end_is_finish_reason_stop() -> None:
    backend = _backend(stop_after=3)
    _, last = await _text(backend.complete("x", base.SamplingParams(max_tokens=10)))
    assert (last.completion_tokens, last.finish_reason) == (3, "stop")


def test_context_overflow_is_raised_before_streaming() -> None:
    backend = _backend(context_length=8)
    with pytest.raises(base.ContextLengthExceeded, match="maximum context length is 8"):
        backend.complete("one two three", base.SamplingParams(max_tokens=6))


async def test_embeddings_are_normalised_and_similar_for_shared_words() -> None:
    backend = _backend()
    result = await backend.embed(["red river", "red river valley", "blue ocean"])
    assert result.prompt_tokens == 7
    for vector in result.vectors:
        assert abs(sum(v * v for v in vector) - 1.0) < 1e-9
    scores = await backend.rerank("red river", ["blue ocean", "red river valley"])
    assert scores.scores[1] > scores.scores[0]


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fake backend options: bogus"):
        registry.create("fake", base.BackendConfig(model_path="-", served_model_name="f", extra_args=("bogus=1",)))
