"""`serve --backend mlx` for real (mlx-lm on mlx[cpu]) with the tiny Llama, driven by the openai SDK.

On Linux MLX runs on the CPU; the same code runs on Metal on a Mac. The rotating KV cache is set
smaller than the answers generated below, so `--max-kv-size` is exercised, not just accepted; the
extra argument `prefill_step_size=8` makes every prompt here prefill in several chunks.
"""

from __future__ import annotations

import pathlib
import platform
import sys
from collections.abc import Iterator

import pytest

from testkit import engine_checks, runtime_server, sampling_checks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = "tiny-mlx"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:
    tmp: pathlib.Path = tmp_path_factory.mktemp("mlx")
    # extraArgs for mlx are generate_step keyword arguments: prefill in chunks of 8 tokens.
    with runtime_server.start(
        tmp, "mlx", tiny_hf_causal, MODEL, "--max-kv-size", "32", extra=("prefill_step_size=8",), ready_timeout=300
    ) as started:
        yield started


class TestOpenAISurface(engine_checks.OpenAISurface):
    model = MODEL
    backend = "mlx"


def test_generates_past_the_rotating_kv_cache(server: runtime_server.RuntimeServer) -> None:
    """With a 32-token KV cache, an 80-token answer still streams to its end."""
    result = server.client().completions.create(model=MODEL, prompt="The quick", max_tokens=80, **engine_checks.GREEDY)
    assert result.choices[0].finish_reason == "length", "the greedy answer should run to max_tokens"
    assert result.usage is not None and result.usage.completion_tokens == 80


def test_client_disconnect_stops_generation(server: runtime_server.RuntimeServer) -> None:
    """Leaving a long stream early stops the engine's loop long before max_tokens (it logs where)."""
    client = server.client()
    engine_checks.leave_stream_early(client, MODEL, max_tokens=1500)
    stopped = engine_checks.wait_for_log(server, "generation stopped early")
    assert int(stopped.split("after ")[1].split(" ")[0]) < 1500, stopped
    engine_checks.check_engine_free(client, MODEL)
    samples = server.metrics()
    assert samples[f'llmserver_requests_in_flight{{model="{MODEL}"}}'] == 0
    assert samples[f'llmserver_max_concurrency{{model="{MODEL}"}}'] == 1


@pytest.mark.apple
@pytest.mark.skipif(
    not (sys.platform == "darwin" and platform.machine() == "arm64"),
    reason="Metal needs Apple Silicon; elsewhere MLX runs on its CPU backend (the tests above)",
)
def test_mlx_generates_on_metal_on_a_mac() -> None:
    import mlx.core as mx

    assert mx.metal.is_available()
    assert mx.default_device() == mx.gpu


class TestSampling(sampling_checks.SamplingChecks):
    model = MODEL
    backend = "mlx"
