"""Sampling options and logprobs on the transformers engine (tiny Llama), through the openai SDK."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from testkit import runtime_server, sampling_checks
from testkit.models import tiny_hf_causal  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(600)

MODEL = "tiny-transformers"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    tmp: pathlib.Path = tmp_path_factory.mktemp("transformers-sampling")
    with runtime_server.start(tmp, "transformers", tiny_hf_causal, MODEL, ready_timeout=300) as started:
        yield started


class TestSampling(sampling_checks.SamplingChecks):
    model = MODEL
    backend = "transformers"
