"""Issue 19 on every real engine: hostile but well-formed inputs never reach an engine as a 500 or
a dead process. Empty prompts are served (from BOS) or refused with a 400; lone surrogates, token
ids, absurd numbers and empty embedding/rerank texts are 400s naming the parameter; extreme seeds
and odd characters are served; the process answers real work afterwards.

One module-scoped server per engine (transformers generating + embedding, transformers reranking,
mlx-lm, mlx-vlm, vLLM CPU), started lazily so `-k` runs only the engines it names."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator

import httpx
import pytest
from testkit import models, runtime_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclasses.dataclass(frozen=True)
class Engine:
    backend: str
    model_kind: str
    flags: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    generates: bool = True
    embeds: bool = False
    reranks: bool = False


ENGINES = {
    "transformers": Engine("transformers", "hf-causal", ("--capabilities", "TextGeneration,Embeddings"), embeds=True),
    "transformers-rerank": Engine("transformers", "hf-rerank", ("--capabilities", "Rerank"), generates=False, reranks=True),
    "mlx": Engine("mlx", "hf-causal"),
    "mlx-vlm": Engine("mlx-vlm", "hf-vlm"),
    "vllm": Engine(
        "vllm", "hf-causal", ("--max-model-len", "256"), ("--enforce-eager",), (("VLLM_CPU_KVCACHE_SPACE", "1"),)
    ),
}  # fmt: skip


GENERATING = sorted(name for name, engine in ENGINES.items() if engine.generates)
ENCODING = sorted(name for name, engine in ENGINES.items() if engine.embeds or engine.reranks)


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, runtime_server.RuntimeServer]]:
    engine = ENGINES[request.param]
    tmp: pathlib.Path = tmp_path_factory.mktemp(request.param)
    path = models.tiny_model_path(engine.model_kind)
    environment = runtime_server.env(**dict(engine.env))
    with runtime_server.start(
        tmp, engine.backend, path, "tiny", *engine.flags, extra=engine.extra, environment=environment, ready_timeout=600
    ) as server:
        yield engine, server


def post(server: runtime_server.RuntimeServer, path: str, body: str) -> httpx.Response:
    return httpx.post(server.url + path, content=body, headers={"content-type": "application/json"}, timeout=120)


def alive(engine: Engine, server: runtime_server.RuntimeServer) -> None:
    assert server.proc.poll() is None, server.output()
    if engine.generates:
        response = post(server, "/v1/completions", '{"model": "tiny", "prompt": "Hello", "max_tokens": 2}')
    elif engine.embeds:
        response = post(server, "/v1/embeddings", '{"model": "tiny", "input": "Hello"}')
    else:
        response = post(server, "/v1/rerank", '{"model": "tiny", "query": "q", "documents": ["d"]}')
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("served", GENERATING, indirect=True)
def test_empty_prompts_are_served_or_refused_never_crash(served: tuple[Engine, runtime_server.RuntimeServer]) -> None:
    engine, server = served
    for body in (
        '{"model": "tiny", "prompt": "", "max_tokens": 2}',
        '{"model": "tiny", "prompt": ["", "a"], "max_tokens": 2}',
        '{"model": "tiny", "messages": [{"role": "user", "content": ""}], "max_tokens": 2}',
    ):
        path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
        response = post(server, path, body)
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            assert response.json()["error"]["param"] in ("prompt", "messages")
    alive(engine, server)


@pytest.mark.parametrize("served", GENERATING, indirect=True)
def test_hostile_generation_inputs_are_400_naming_the_parameter(
    served: tuple[Engine, runtime_server.RuntimeServer],
) -> None:
    engine, server = served
    cases = [
        ("/v1/completions", '{"model": "tiny", "prompt": "a\\ud800", "max_tokens": 2}', "prompt"),
        ("/v1/chat/completions", '{"model": "tiny", "messages": [{"role": "user", "content": "\\udc00"}]}',
         "messages[0].content"),
        ("/v1/completions", '{"model": "tiny", "prompt": [5, 123456789], "max_tokens": 2}', "prompt"),
        ("/v1/completions", '{"model": "tiny", "prompt": "a", "max_tokens": 99999999999}', "max_tokens"),
        ("/v1/completions", '{"model": "tiny", "prompt": "a", "seed": 99999999999999999999999}', "seed"),
    ]  # fmt: skip
    for path, body, param in cases:
        response = post(server, path, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param, response.text
    alive(engine, server)


@pytest.mark.parametrize("served", GENERATING, indirect=True)
def test_extreme_seeds_and_odd_text_are_served(served: tuple[Engine, runtime_server.RuntimeServer]) -> None:
    engine, server = served
    for seed in (2**63 - 1, -(2**63), -1):
        body = f'{{"model": "tiny", "prompt": "nul \\u0000 and \\ud83d\\ude00", "max_tokens": 2, "seed": {seed}}}'
        response = post(server, "/v1/completions", body)
        assert response.status_code == 200, (seed, response.text)
    alive(engine, server)


@pytest.mark.parametrize("served", ENCODING, indirect=True)
def test_empty_embedding_and_rerank_texts_are_400(served: tuple[Engine, runtime_server.RuntimeServer]) -> None:
    engine, server = served
    cases = []
    if engine.embeds:
        cases += [('{"model": "tiny", "input": ["", "a"]}', "input"), ('{"model": "tiny", "input": ""}', "input")]
    if engine.reranks:
        cases += [
            ('{"model": "tiny", "query": "", "documents": ["d"]}', "query"),
            ('{"model": "tiny", "query": "q", "documents": ["d", ""]}', "documents"),
        ]
    for body, param in cases:
        response = post(server, "/v1/embeddings" if '"input"' in body else "/v1/rerank", body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    if engine.reranks:  # a query longer than the model's window (only documents are cut): a 400
        response = post(server, "/v1/rerank", '{"model": "tiny", "query": "' + "word " * 5000 + '", "documents": ["d"]}')
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "query"
        assert response.json()["error"]["code"] == "context_length_exceeded"
    alive(engine, server)
