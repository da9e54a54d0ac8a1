"""mlx-lm: response_format and forced tool calls by an xgrammar guide among mlx-lm's logits
processors; tools through the tokenizer's chat template. mlx-vlm refuses both with a 400."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testkit import runtime_server, structured_checks
from testkit.models import tiny_hf_causal  # noqa: F401 - session fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_hf_causal: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    with runtime_server.start(tmp_path_factory.mktemp("mlx"), "mlx", tiny_hf_causal, "tiny", ready_timeout=300) as running:
        yield running


class TestMlx(structured_checks.StructuredChecks):
    """Every structured-output and tool check on the tiny Llama under mlx-lm."""
