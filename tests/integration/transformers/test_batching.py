"""Concurrent requests on the transformers backend share forward passes and still answer exactly
what each answers alone: left padding, masks and positions are right, every request keeps its own
sampling parameters, cancellation frees its row, and the batch counters prove passes were shared."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from llmserver_backends import base, registry, structured
from testkit import models

pytestmark = pytest.mark.timeout(600)

# Prompts of very different lengths: the short ones are left-padded against the long one.
PROMPTS = ("a", "Once upon a time", "Hello, how are you today? I am fine, thank you for asking.", "The river")


def _load(**options: object) -> base.ModelBackend:
    config = base.BackendConfig(model_path=models.tiny_model_path("hf-causal"), served_model_name="m", options=options)
    backend = registry.create("transformers", config)
    asyncio.run(backend.load())
    return backend


@pytest.fixture(scope="module")
def backend() -> Iterator[base.ModelBackend]:
    loaded = _load(max_batch_size=4)
    yield loaded
    asyncio.run(loaded.unload())


def _no_end(backend: base.ModelBackend) -> dict[int, float]:
    """A logit_bias that bans the end tokens, so every request runs to its max_tokens."""
    return {token: -100.0 for token in backend._stop_ids}  # noqa: SLF001 - the loaded model's end tokens


async def _text(backend: base.ModelBackend, prompt: str, params: base.SamplingParams) -> tuple[str, base.Delta]:
    deltas = [delta async for delta in backend.complete(prompt, params)]
    return "".join(delta.text for delta in deltas), deltas[-1]


async def _alone_and_together(
    backend: base.ModelBackend, requests: list[tuple[str, base.SamplingParams]]
) -> tuple[list[tuple[str, base.Delta]], list[tuple[str, base.Delta]]]:
    alone = [await _text(backend, prompt, params) for prompt, params in requests]
    together = await asyncio.gather(*(_text(backend, prompt, params) for prompt, params in requests))
    return alone, list(together)


def test_concurrent_greedy_requests_answer_as_they_do_alone(backend) -> None:
    bias = _no_end(backend)
    requests = [
        (prompt, base.SamplingParams(max_tokens=6 + 5 * index, temperature=0.0, logit_bias=bias))
        for index, prompt in enumerate(PROMPTS)
    ]
    before = backend.batch_stats
    alone, together = asyncio.run(_alone_and_together(backend, requests))
    after = backend.batch_stats
    assert [text for text, _ in together] == [text for text, _ in alone]
    for (_, last), (prompt, params) in zip(together, requests, strict=True):
        assert last.completion_tokens == params.max_tokens and last.finish_reason == "length"
        assert last.prompt_tokens == backend.count_tokens(prompt)
    # Alone every token was a pass of one row; together four rows shared passes: the concurrent
    # round took fewer decode passes than it produced tokens, and one pass carried all four.
    tokens = sum(params.max_tokens for _, params in requests)
    assert after.largest_batch == 4
    concurrent_passes = after.decode_passes - before.decode_passes - (tokens - len(requests))
    assert concurrent_passes < tokens - len(requests)


def test_each_request_keeps_its_own_sampling_parameters(backend) -> None:
    bias = _no_end(backend)
    object_schema = structured.JsonConstraint(schema=None, param="response_format")
    requests = [
        ("The weather is", base.SamplingParams(max_tokens=12, temperature=1.0, top_p=0.8, seed=1, logit_bias=bias)),
        ("The weather is", base.SamplingParams(max_tokens=12, temperature=0.7, top_k=5, seed=2, logit_bias=bias)),
        ("Once upon", base.SamplingParams(max_tokens=10, temperature=0.0, presence_penalty=1.5,
                                          frequency_penalty=0.5, repetition_penalty=1.3, logit_bias=bias)),
        ("Once upon", base.SamplingParams(max_tokens=9, temperature=1.0, min_p=0.2, seed=3, logprobs=2,
                                          logit_bias=bias)),
    ]  # fmt: skip
    alone, together = asyncio.run(_alone_and_together(backend, requests))
    assert [text for text, _ in together] == [text for text, _ in alone]
    assert together[0][0] != together[1][0]  # same prompt, different seeds and filters: different answers
    assert together[3][1].logprobs and len(together[3][1].logprobs[0].top) == 2
    assert not together[0][1].logprobs
    # A structured request next to free ones: its grammar masks only its own row.
    forced = base.SamplingParams(max_tokens=40, temperature=0.0, constraint=object_schema)

    async def mixed() -> list[tuple[str, base.Delta]]:
        free = base.SamplingParams(max_tokens=20, temperature=0.0, logit_bias=bias)
        return list(await asyncio.gather(_text(backend, "Data:", forced), _text(backend, "Data:", free)))

    (json_text, _), (free_text, _) = asyncio.run(mixed())
    assert json_text.startswith("{") and not free_text.startswith("{")


def test_requests_join_a_running_batch_and_leave_it(backend) -> None:
    bias = _no_end(backend)
    long = base.SamplingParams(max_tokens=40, temperature=0.0, logit_bias=bias)
    short = base.SamplingParams(max_tokens=5, temperature=0.0, logit_bias=bias)

    async def run() -> tuple[list[str], list[str]]:
        pairs = ((PROMPTS[2], long), (PROMPTS[0], short))
        alone = [(await _text(backend, prompt, params))[0] for prompt, params in pairs]
        stream = backend.complete(PROMPTS[2], long)
        first = [await anext(stream) for _ in range(5)]  # the long request is mid-flight ...
        joined = await _text(backend, PROMPTS[0], short)  # ... when the short one joins and leaves
        rest = [delta async for delta in stream]
        return alone, ["".join(d.text for d in first + rest), joined[0]]

    alone, together = asyncio.run(run())
    assert together == alone


def test_leaving_early_frees_the_row_for_the_next_request() -> None:
    single = _load(max_batch_size=1)
    try:
        assert single.max_concurrency == 1
        bias = _no_end(single)

        async def run() -> tuple[int, int, int]:
            stream = single.complete("Hello", base.SamplingParams(max_tokens=1500, temperature=0.0, logit_bias=bias))
            taken = [await anext(stream) for _ in range(3)]
            await asyncio.wait_for(stream.aclose(), timeout=60)  # returns once the row is gone
            passes = single.batch_stats.decode_passes
            next_params = base.SamplingParams(max_tokens=4, temperature=0.0, logit_bias=bias)
            _, last = await asyncio.wait_for(_text(single, "Hi", next_params), 60)
            return len(taken), last.completion_tokens, passes

        taken, completed, passes = asyncio.run(run())
        assert (taken, completed) == (3, 4)
        assert passes < 100  # the abandoned request stopped right away, not after 1500 tokens
    finally:
        asyncio.run(single.unload())


def test_a_cancelled_neighbour_leaves_the_others_untouched(backend) -> None:
    bias = _no_end(backend)
    params = base.SamplingParams(max_tokens=20, temperature=0.0, logit_bias=bias)

    async def run() -> tuple[str, str]:
        alone = (await _text(backend, PROMPTS[1], params))[0]
        leaving = backend.complete(PROMPTS[2], base.SamplingParams(max_tokens=500, temperature=0.0, logit_bias=bias))
        staying = asyncio.ensure_future(_text(backend, PROMPTS[1], params))
        await anext(leaving)
        await anext(leaving)
        await leaving.aclose()
        return alone, (await staying)[0]

    alone, together = asyncio.run(run())
    assert together == alone


def test_one_bad_request_fails_alone(backend) -> None:
    params = base.SamplingParams(max_tokens=8, temperature=0.0)

    async def run() -> tuple[BaseException | tuple[str, base.Delta], ...]:
        too_long = base.SamplingParams(max_tokens=5000)
        return tuple(
            await asyncio.gather(
                _text(backend, "Hello", too_long), _text(backend, "Hello", params), return_exceptions=True
            )
        )

    failed, fine = asyncio.run(run())
    assert isinstance(failed, base.ContextLengthExceeded)
    assert isinstance(fine, tuple) and fine[1].completion_tokens >= 1


def test_embeddings_run_between_decode_passes() -> None:
    from llmserver_api import Capability

    config = base.BackendConfig(
        model_path=models.tiny_model_path("hf-causal"), served_model_name="m",
        capabilities=frozenset({Capability.TEXT_GENERATION, Capability.EMBEDDINGS}),
    )  # fmt: skip
    both = registry.create("transformers", config)
    asyncio.run(both.load())
    try:

        async def run() -> tuple[int, base.Delta]:
            params = base.SamplingParams(max_tokens=1500, temperature=0.0, logit_bias=_no_end(both))
            stream = both.complete("Hello", params)
            await anext(stream)
            vectors = await asyncio.wait_for(both.embed(["while it generates"]), 60)
            following = await anext(stream)  # still generating: the embedding did not wait for its end
            await stream.aclose()
            return len(vectors.vectors[0]), following

        width, following = asyncio.run(run())
        assert width == 128 and following.finish_reason is None and following.completion_tokens < 1500
    finally:
        asyncio.run(both.unload())
