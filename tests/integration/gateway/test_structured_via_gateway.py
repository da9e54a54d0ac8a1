"""Structured outputs and tool calls through the gateway, to a real llama.cpp runtime on the tiny
GGUF: the SDK's parse helper, a named tool call (whole and as streamed tool-call deltas) and a
tool-result round trip arrive as they do from the runtime itself."""

from __future__ import annotations

import openai
import pytest

from testkit import runtime_server, structured_checks
from testkit.models import tiny_gguf  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def client(workdir, start_gateway, tiny_gguf):  # noqa: F811
    with runtime_server.start(workdir, "llama-cpp", tiny_gguf, "tiny", "--n-ctx", "1024", "--n-threads", "2") as runtime:
        proc, _ = start_gateway({"models": [{"name": "tiny", "endpoints": [{"url": runtime.url}]}]})
        gateway = openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        yield gateway
        gateway.close()


def test_parse_with_pydantic(client: openai.OpenAI) -> None:
    structured_checks.check_parse_pydantic(client, "tiny")


def test_named_tool_call_whole_and_streamed(client: openai.OpenAI) -> None:
    structured_checks.check_named_tool_call(client, "tiny")


def test_tool_round_trip(client: openai.OpenAI) -> None:
    structured_checks.check_tool_round_trip(client, "tiny")
