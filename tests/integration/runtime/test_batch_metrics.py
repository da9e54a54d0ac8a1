"""The runtime's batch metrics (`llmserver_batch_size`, `llmserver_decode_steps_total`) from real
`serve` processes: concurrent requests on the engines that batch (transformers, llama-cpp) show
decode steps that carried more than one sequence; an engine that does not batch in-process (fake)
exports no batch series at all."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator

import pytest

from testkit import models, runtime_server

pytestmark = pytest.mark.timeout(600)

MODEL = "tiny"
STREAMS = 4
MAX_TOKENS = 24
# The tiny models' special tokens (<|endoftext|>, <|im_start|>, <|im_end|>): banned so that every
# stream runs to MAX_TOKENS and the streams overlap for most of their steps.
NO_END = {"0": -100, "1": -100, "2": -100}
PROMPTS = ("Once upon a time", "The quick brown fox", "Numbers: 1 2 3", "def main():")
ENGINES = {
    "transformers": ("hf-causal", ("--max-batch-size", str(STREAMS))),
    "llama-cpp": ("gguf", ("--parallel", str(STREAMS), "--n-ctx", "1024", "--n-threads", "1")),
}


@pytest.fixture(scope="module", params=sorted(ENGINES))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    kind, flags = ENGINES[request.param]
    tmp: pathlib.Path = tmp_path_factory.mktemp(f"batch-metrics-{request.param}")
    with runtime_server.start(
        tmp, request.param, models.tiny_model_path(kind), MODEL, *flags,
        environment=runtime_server.env(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"), ready_timeout=300,
    ) as started:  # fmt: skip
        yield started


def _batch_samples(samples: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in samples.items() if name.startswith(("llmserver_batch", "llmserver_decode"))}


def test_concurrent_streams_show_decode_steps_of_several_sequences(server: runtime_server.RuntimeServer) -> None:
    before = server.metrics()
    bucket_one = f'llmserver_batch_size_bucket{{le="1.0",model="{MODEL}"}}'
    count = f'llmserver_batch_size_count{{model="{MODEL}"}}'
    steps = f'llmserver_decode_steps_total{{model="{MODEL}"}}'
    assert {bucket_one, count, steps} <= set(before)  # exported from the first scrape

    async def together() -> list[int]:
        async with server.async_client() as client:
            answers = await asyncio.gather(*(
                client.completions.create(model=MODEL, prompt=prompt, max_tokens=MAX_TOKENS, temperature=0,
                                          logit_bias=NO_END)
                for prompt in PROMPTS
            ))  # fmt: skip
        return [answer.usage.completion_tokens for answer in answers]

    assert asyncio.run(together()) == [MAX_TOKENS] * STREAMS
    after = server.metrics()
    new_steps = after[count] - before[count]
    rows = after[f'llmserver_batch_size_sum{{model="{MODEL}"}}'] - before[f'llmserver_batch_size_sum{{model="{MODEL}"}}']
    assert after[steps] - before[steps] == new_steps > 0
    # Steps of more than one sequence happened, and on average the steps carried several.
    assert after[count] - after[bucket_one] > before[count] - before[bucket_one], _batch_samples(after)
    assert rows / new_steps > 1.5, _batch_samples(after)
    assert after[f'llmserver_batch_size_bucket{{le="+Inf",model="{MODEL}"}}'] == after[count]
    assert after[f'llmserver_batch_size_bucket{{le="4.0",model="{MODEL}"}}'] == after[count]  # at most STREAMS rows


def test_an_engine_that_does_not_batch_exports_no_batch_series(tmp_path: pathlib.Path) -> None:
    with runtime_server.start(tmp_path, "fake", "unused", MODEL) as fake:
        fake.client().completions.create(model=MODEL, prompt="Hi", max_tokens=4)
        samples = fake.metrics()
    assert f'llmserver_requests_total{{endpoint="completions",model="{MODEL}",status="200"}}' in samples
    assert _batch_samples(samples) == {}
