"""`serve --backend transformers --max-batch-size N` as a real process: the flag reaches the
backend (the runtime admits N requests at once, /metrics says so) and N concurrent clients get,
through the openai SDK, exactly the answers they get one at a time."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator

import pytest

from testkit import models, runtime_server

pytestmark = pytest.mark.timeout(600)

MODEL = "tiny"
BATCH = 3
PROMPTS = ("Once upon a time", "Hi", "Hello, how are you today? I hope the river is calm.")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    tmp: pathlib.Path = tmp_path_factory.mktemp("serve-batching")
    with runtime_server.start(
        tmp, "transformers", models.tiny_model_path("hf-causal"), MODEL, "--max-batch-size", str(BATCH),
        environment=runtime_server.env(HF_HUB_OFFLINE="1"), ready_timeout=300,
    ) as started:  # fmt: skip
        yield started


def test_max_batch_size_sets_the_concurrency_and_batched_answers_equal_solo_ones(server) -> None:
    assert server.metrics()[f'llmserver_max_concurrency{{model="{MODEL}"}}'] == BATCH
    client = server.client()

    def solo(prompt: str, max_tokens: int) -> str:
        answer = client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0)
        return answer.choices[0].text

    expected = [solo(prompt, 8 + 4 * index) for index, prompt in enumerate(PROMPTS)]

    async def together() -> list[str]:
        async with server.async_client() as concurrent:
            answers = await asyncio.gather(*(
                concurrent.completions.create(model=MODEL, prompt=prompt, max_tokens=8 + 4 * index, temperature=0)
                for index, prompt in enumerate(PROMPTS)
            ))  # fmt: skip
        return [answer.choices[0].text for answer in answers]

    assert asyncio.run(together()) == expected
