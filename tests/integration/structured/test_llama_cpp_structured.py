"""llama.cpp: response_format and forced tool calls by llama.cpp's own grammars (JSON-schema
converter, JSON grammar); tools and tool results through the GGUF's chat template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testkit import runtime_server, structured_checks
from testkit.models import tiny_gguf  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    with runtime_server.start(
        tmp_path_factory.mktemp("llama"), "llama-cpp", tiny_gguf, "tiny", "--n-ctx", "1024", "--n-threads", "2"
    ) as running:
        yield running


class TestLlamaCpp(structured_checks.StructuredChecks):
    """Every structured-output and tool check on the tiny GGUF."""
