"""transformers: response_format and forced tool calls by xgrammar masks in our token loop;
tools and tool results through the tokenizer's chat template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testkit import runtime_server, structured_checks
from testkit.models import tiny_hf_causal  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    with runtime_server.start(tmp_path_factory.mktemp("transformers"), "transformers", tiny_hf_causal, "tiny") as running:
        yield running


class TestTransformers(structured_checks.StructuredChecks):
    """Every structured-output and tool check on the tiny HF Llama."""
