"""Sampling options and logprobs on the fake backend (word tokens), through the openai SDK."""

from __future__ import annotations

import pytest
from llmserver_backends import fake
from testkit import runtime_server, sampling_checks


@pytest.fixture(scope="module")
def server(fake_server: runtime_server.RuntimeServer) -> runtime_server.RuntimeServer:
    return fake_server


class TestSampling(sampling_checks.SamplingChecks):
    model = "tiny"
    backend = "fake"
    bias_token = (fake.VOCABULARY.index("anchor"), "anchor")
