"""Continuous batching in the llama-cpp backend, on the tiny GGUF in process.

Concurrent requests must not change what any one of them gets: each request is first run alone,
then all together, and text, usage, finish reason and logprobs must match exactly (greedy and
seeded sampling alike). Stops, cancellation, slot limits and KV-pool preemption are per request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from llmserver_backends import base, llama_cpp, structured
from testkit.models import tiny_gguf  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(600)

PROMPTS = ("Hello there", "Once upon a time, in a land far away,", "The model", "A question: what is")
# Token ids of the tiny vocabulary's end tokens (<|endoftext|> 0, <|im_end|> 2): a bias of -100
# keeps a request generating until max_tokens.
NO_END = {0: -100.0, 2: -100.0}

JSON_ANSWER = structured.JsonConstraint.of(
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"]}
)

Result = tuple[str, int, int, str | None, tuple[base.TokenLogprob, ...]]


def backend(path: str, parallel: int, n_ctx: int = 512, n_batch: int = 512) -> llama_cpp.LlamaCppBackend:
    options = {"n_ctx": n_ctx, "n_threads": 1, "parallel": parallel, "n_batch": n_batch}
    loaded = llama_cpp.LlamaCppBackend(base.BackendConfig(model_path=path, served_model_name="t", options=options))
    asyncio.run(loaded.load())
    return loaded


@pytest.fixture(scope="module")
def eight(tiny_gguf: str) -> Iterator[llama_cpp.LlamaCppBackend]:  # noqa: F811
    loaded = backend(tiny_gguf, 8)
    yield loaded
    asyncio.run(loaded.unload())


async def run(engine: llama_cpp.LlamaCppBackend, prompt: str, params: base.SamplingParams) -> Result:
    text, logprobs, last = [], [], None
    async for delta in engine.complete(prompt, params):
        text.append(delta.text)
        logprobs.extend(delta.logprobs)
        last = delta
    assert last is not None
    return "".join(text), last.prompt_tokens, last.completion_tokens, last.finish_reason, tuple(logprobs)


def mixed_params() -> list[base.SamplingParams]:
    """Nine requests that each use the sampler differently (one follows a JSON schema)."""
    return [
        base.SamplingParams(max_tokens=24, temperature=0.0),
        base.SamplingParams(max_tokens=31, temperature=0.9, seed=1),
        base.SamplingParams(max_tokens=17, temperature=1.2, seed=2, top_k=20, top_p=0.9),
        base.SamplingParams(max_tokens=40, temperature=0.8, seed=3, min_p=0.05, logprobs=2),
        base.SamplingParams(max_tokens=28, temperature=0.0, repetition_penalty=1.3, frequency_penalty=0.5),
        base.SamplingParams(max_tokens=22, temperature=1.0, seed=4, presence_penalty=0.7, logit_bias={337: 3.0}),
        base.SamplingParams(max_tokens=35, temperature=0.0, logprobs=0, logit_bias=NO_END),
        base.SamplingParams(max_tokens=12, temperature=0.7, seed=2**40 + 5),
        base.SamplingParams(max_tokens=30, temperature=0.9, seed=6, constraint=JSON_ANSWER),
    ]


async def test_concurrent_requests_get_what_each_gets_alone(eight: llama_cpp.LlamaCppBackend) -> None:
    jobs = [(PROMPTS[i % len(PROMPTS)], params) for i, params in enumerate(mixed_params())]
    alone = [await run(eight, prompt, params) for prompt, params in jobs]
    together = await asyncio.gather(*(run(eight, prompt, params) for prompt, params in jobs))
    assert [result[:4] for result in together] == [result[:4] for result in alone]
    for batched, single in zip(together, alone, strict=True):
        # Logprob values agree to float rounding (batched matrix products add in another order),
        # so near-tied alternatives may swap: their values are compared in order, not their names.
        assert [e.token for e in batched[4]] == [e.token for e in single[4]]
        def values(entries: tuple[base.TokenLogprob, ...]) -> list[float]:
            return [v for e in entries for v in (e.logprob, *(v for _, v, _ in e.top))]

        assert values(batched[4]) == pytest.approx(values(single[4]), abs=1e-3)
    assert len({result[0] for result in alone}) >= 5, "the requests were meant to differ"
    assert set(json.loads(alone[-1][0])) == {"n"}, "the grammar held while batched with others"
    assert all(result[2] > 0 for result in alone)


async def test_usage_is_per_request(eight: llama_cpp.LlamaCppBackend) -> None:
    jobs = [(prompt, base.SamplingParams(max_tokens=5 + 3 * i, temperature=0.0, logit_bias=NO_END)) for i, prompt in
            enumerate(PROMPTS)]  # fmt: skip
    results = await asyncio.gather(*(run(eight, prompt, params) for prompt, params in jobs))
    for (prompt, params), (_, n_prompt, n_completion, finish, _) in zip(jobs, results, strict=True):
        assert n_prompt == eight.count_tokens(prompt)
        assert (n_completion, finish) == (params.max_tokens, "length")


async def test_a_stop_string_ends_only_its_own_request(eight: llama_cpp.LlamaCppBackend) -> None:
    params = base.SamplingParams(max_tokens=30, temperature=0.0, logit_bias=NO_END)
    full = await run(eight, PROMPTS[1], params)
    stop = full[0][10:13]
    assert stop.strip() and full[0].find(stop) >= 0
    stopped, other = await asyncio.gather(
        run(eight, PROMPTS[1], base.SamplingParams(max_tokens=30, temperature=0.0, logit_bias=NO_END, stop=(stop,))),
        run(eight, PROMPTS[1], params),
    )
    assert stopped[0] == full[0][: full[0].find(stop)]
    assert stopped[3] == "stop" and stopped[2] < full[2]
    assert other == full


async def test_a_cancelled_stream_frees_its_slot(tiny_gguf: str) -> None:  # noqa: F811
    engine = await asyncio.to_thread(backend, tiny_gguf, 2, 4096)
    try:
        long = base.SamplingParams(max_tokens=1800, temperature=0.0, logit_bias=NO_END)
        keeps_running = asyncio.create_task(run(engine, PROMPTS[0], long))
        cancelled = engine.complete(PROMPTS[1], long)
        async for _ in cancelled:
            break
        await cancelled.aclose()  # the client went away
        short = await run(engine, PROMPTS[2], base.SamplingParams(max_tokens=4, temperature=0.0))
        assert short[2] == 4
        assert not keeps_running.done(), "the new request had to wait for a slot the cancelled one held"
        assert (await keeps_running)[2] == 1800
        assert engine._scheduler is not None and engine._scheduler.running == 0
    finally:
        await engine.unload()


async def test_no_more_requests_run_than_slots(tiny_gguf: str) -> None:  # noqa: F811
    engine = await asyncio.to_thread(backend, tiny_gguf, 2)
    try:
        assert engine.max_concurrency == 2
        scheduler = engine._scheduler
        assert scheduler is not None
        params = base.SamplingParams(max_tokens=40, temperature=0.0, logit_bias=NO_END)
        alone = await run(engine, PROMPTS[0], params)
        seen: list[int] = []
        jobs = asyncio.gather(*(run(engine, PROMPTS[0], params) for _ in range(5)))
        while not jobs.done():
            seen.append(scheduler.running)
            await asyncio.sleep(0.001)
        assert (await jobs) == [alone] * 5
        assert max(seen) == 2
    finally:
        await engine.unload()


async def test_requests_outgrowing_the_shared_cache_are_preempted_and_resume(tiny_gguf: str) -> None:  # noqa: F811
    # 4 slots share a 256-cell KV cache; together they need ~4 x 130 cells.
    engine = await asyncio.to_thread(backend, tiny_gguf, 4, 256)
    try:
        jobs = [(prompt, base.SamplingParams(max_tokens=120, temperature=0.0, logit_bias=NO_END)) for prompt in PROMPTS]
        alone = [await run(engine, prompt, params) for prompt, params in jobs]
        together = await asyncio.gather(*(run(engine, prompt, params) for prompt, params in jobs))
        assert together == alone
        assert all(result[2] == 120 for result in together)
    finally:
        await engine.unload()


async def test_prompts_read_in_small_chunks_give_the_same_answers(tiny_gguf: str) -> None:  # noqa: F811
    # --n-batch 2 is raised to the 3 slots (llama.cpp needs one output per slot per step), so every
    # prompt is read over several steps, alone and interleaved with the others' decoding.
    engine = await asyncio.to_thread(backend, tiny_gguf, 3, 512, 2)
    try:
        params = base.SamplingParams(max_tokens=10, temperature=0.0, logit_bias=NO_END)
        alone = [await run(engine, prompt, params) for prompt in PROMPTS]
        assert await asyncio.gather(*(run(engine, prompt, params) for prompt in PROMPTS)) == alone
    finally:
        await engine.unload()


async def test_a_prompt_that_extends_the_last_one_reuses_its_cached_prefix(
    tiny_gguf: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import llama_cpp as bindings

    decoded: list[int] = []
    decode = bindings.llama_decode

    def counting(ctx: object, batch: object) -> int:
        decoded.append(batch.n_tokens)  # type: ignore[attr-defined]
        return decode(ctx, batch)

    first_turn = "Once upon a time, in a land far away, there lived a model"
    second_turn = first_turn + " and it answered every question"
    params = base.SamplingParams(max_tokens=6, temperature=0.0, logit_bias=NO_END)
    cold = await asyncio.to_thread(backend, tiny_gguf, 2)
    try:
        expected = await run(cold, second_turn, params)
    finally:
        await cold.unload()
    engine = await asyncio.to_thread(backend, tiny_gguf, 2)
    try:
        await run(engine, first_turn, params)
        monkeypatch.setattr(bindings, "llama_decode", counting)
        assert await run(engine, second_turn, params) == expected
        # Only the new words and the generated tokens were decoded, not the shared prefix.
        assert sum(decoded) < engine.count_tokens(second_turn) - engine.count_tokens(first_turn) + 6 + 2
    finally:
        await engine.unload()
