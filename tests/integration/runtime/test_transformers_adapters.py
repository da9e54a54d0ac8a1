"""LoRA adapters on the transformers backend through a real `serve` process: peft adapters given
at start and loaded live, switched per request (testkit.adapter_checks)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator

import pytest

from testkit import adapter_checks, lora_adapters, runtime_server
from testkit.models import tiny_hf_causal  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "tiny-hf"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> pathlib.Path:  # noqa: F811
    """The trusted adapter root: peft adapters one, two, three (seeds 1, 2, 3)."""
    path = tmp_path_factory.mktemp("transformers-adapters")
    for seed, name in enumerate(("one", "two", "three"), start=1):
        lora_adapters.hf_lora(tiny_hf_causal, path / name, seed)
    return path


@pytest.fixture(scope="module")
def server(root: pathlib.Path, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    environment = runtime_server.env(LLMSERVER_ADAPTER_ROOT=str(root))
    with runtime_server.start(
        root, "transformers", tiny_hf_causal, MODEL, "--adapter", f"one={root / 'one'}", "--adapter", f"two={root / 'two'}",
        environment=environment, ready_timeout=300,
    ) as started:  # fmt: skip
        yield started


class TestAdapters(adapter_checks.AdapterSurface):
    model = MODEL
    live = True


def test_concurrent_requests_for_different_adapters_answer_as_they_do_alone(
    server: runtime_server.RuntimeServer,
) -> None:
    """Requests for the base and two adapters at once are never mixed: each equals its solo run."""
    models = [MODEL, f"{MODEL}:one", f"{MODEL}:two"] * 2
    solo = {model: adapter_checks.greedy(server.client(), model) for model in set(models)}

    async def together() -> list[str]:
        async with server.async_client() as client:
            answers = await asyncio.gather(*(
                client.completions.create(model=model, prompt=adapter_checks.PROMPT, max_tokens=12, temperature=0)
                for model in models
            ))  # fmt: skip
        return [answer.choices[0].text for answer in answers]

    assert asyncio.run(together()) == [solo[model] for model in models]
