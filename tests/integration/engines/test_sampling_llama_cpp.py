"""Sampling options and logprobs on the llama-cpp engine (tiny GGUF), through the openai SDK."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from testkit import runtime_server, sampling_checks
from testkit.models import tiny_gguf  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(300)

MODEL = "tiny-llama"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    tmp: pathlib.Path = tmp_path_factory.mktemp("llama-sampling")
    with runtime_server.start(tmp, "llama-cpp", tiny_gguf, MODEL, "--n-ctx", "512", "--n-threads", "2") as started:
        yield started


class TestSampling(sampling_checks.SamplingChecks):
    model = MODEL
    backend = "llama-cpp"
