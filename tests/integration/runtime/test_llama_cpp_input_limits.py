"""Issue 19 on llama.cpp: requests that used to end the process (llama.cpp aborts on an empty
sequence) or answer 500 are 400s, and the same process serves on afterwards.

The crash is checked at both layers: through `serve` (the route refuses empty input before the
engine sees it) and in-process on the backend itself (its own guard, for any caller)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import llmserver_api
import openai
import pytest
from llmserver_backends import base, registry
from testkit import runtime_server
from testkit.models import tiny_gguf  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    with runtime_server.start(
        tmp_path_factory.mktemp("llama-limits"),
        "llama-cpp",
        tiny_gguf,
        "tiny",
        "--capabilities",
        "TextGeneration,Embeddings",
        "--n-ctx",
        "256",
        "--n-threads",
        "2",
    ) as server:
        yield server


def _alive_and_serving(server: runtime_server.RuntimeServer) -> None:
    assert server.proc.poll() is None, server.output()
    client = server.client()
    assert len(client.embeddings.create(model="tiny", input=["a", "b"]).data[0].embedding) > 0
    assert client.completions.create(model="tiny", prompt="Hello", max_tokens=2, temperature=0).choices


@pytest.mark.parametrize("value", [["", "a"], "", ["a", ""]])
def test_empty_embedding_input_is_400_and_the_process_lives(
    llama: runtime_server.RuntimeServer, value: str | list[str]
) -> None:
    for _ in range(3):  # repeatable: no crash loop
        with pytest.raises(openai.BadRequestError) as caught:
            llama.client().embeddings.create(model="tiny", input=value)
        assert caught.value.response.json()["error"]["param"] == "input"
    _alive_and_serving(llama)


def test_an_empty_completion_prompt_starts_from_bos(llama: runtime_server.RuntimeServer) -> None:
    reply = llama.client().completions.create(model="tiny", prompt=["", "a"], max_tokens=2, temperature=0)
    assert len(reply.choices) == 2 and reply.usage.prompt_tokens >= 2
    _alive_and_serving(llama)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/embeddings", '{"model": "tiny", "input": ["\\ud800"]}', "input[0]"),
        ("/v1/completions", '{"model": "tiny", "prompt": "a\\udc00", "max_tokens": 2}', "prompt"),
        ("/v1/chat/completions", '{"model": "tiny", "messages": [{"role": "user", "content": "\\ud8ff"}]}',
         "messages[0].content"),
        ("/v1/completions", '{"model": "tiny", "prompt": "a", "max_tokens": 100000000000}', "max_tokens"),
        ("/v1/completions", '{"model": "tiny", "prompt": "a", "seed": 100000000000000000000000}', "seed"),
        ("/v1/completions", '{"model": "tiny", "prompt": [1, 99999999], "max_tokens": 2}', "prompt"),
        ("/v1/embeddings", '{"model": "tiny", "input": [[-1, 7]]}', "input"),
        ("/v1/embeddings", '{"model": "tiny", "input": "a", "nested": ' + "[" * 1000 + "]" * 1000 + "}", None),
    ],
)  # fmt: skip
def test_bad_inputs_are_400_naming_the_parameter(
    llama: runtime_server.RuntimeServer, path: str, body: str, param: str | None
) -> None:
    response = httpx.post(llama.url + path, content=body, headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    _alive_and_serving(llama)


def test_extreme_but_valid_values_are_served(llama: runtime_server.RuntimeServer) -> None:
    client = llama.client()
    for seed in (2**63 - 1, -(2**63), -1):  # folded into llama.cpp's 32-bit seed, not a crash
        assert client.completions.create(model="tiny", prompt="a", max_tokens=2, seed=seed).choices
    assert client.embeddings.create(model="tiny", input=["nul \x00 byte", " ", "\n"]).data
    body = {"model": "tiny", "input": "a" * 100_000}  # far over the embedding window
    response = httpx.post(llama.url + "/v1/embeddings", json=body, timeout=60)
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    _alive_and_serving(llama)


async def test_the_backend_itself_refuses_an_empty_sequence(tiny_gguf: str) -> None:  # noqa: F811
    backend = registry.create(
        "llama-cpp",
        base.BackendConfig(
            model_path=tiny_gguf,
            served_model_name="t",
            options={"n_ctx": 128, "n_threads": 1},
            capabilities=frozenset({llmserver_api.Capability.EMBEDDINGS}),
        ),
    )
    await backend.load()
    try:
        with pytest.raises(base.UnsupportedRequest, match="empty"):
            await backend.embed(["", "a"])
        assert len((await backend.embed(["a"])).vectors) == 1  # the engine is fine afterwards
    finally:
        await backend.unload()
