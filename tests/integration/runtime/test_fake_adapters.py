"""`serve --adapter NAME=PATH` as a real process with the fake engine, driven by the openai SDK:
adapters are models of their own (`tiny:NAME`, parent `tiny`), answer differently from the base
and from each other, and load/unload live behind the API key, confined to the trusted root."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import openai
import pytest
from testkit import runtime_server

KEY = "sekret"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The trusted adapter root, with two adapter folders in it."""
    path = tmp_path_factory.mktemp("adapters")
    for name in ("sql", "chat", "extra"):
        (path / name).mkdir()
    return path


@pytest.fixture(scope="module")
def server(root: pathlib.Path) -> Iterator[runtime_server.RuntimeServer]:
    environment = runtime_server.env(LLMSERVER_API_KEY=KEY, LLMSERVER_ADAPTER_ROOT=str(root))
    flags = ("--adapter", f"sql={root / 'sql'}", "--adapter", f"chat={root / 'chat'}")
    with runtime_server.start(root, "fake", "unused", "tiny", *flags, environment=environment) as running:
        yield running


def _post(server: runtime_server.RuntimeServer, path: str, body: dict[str, object], key: str = KEY) -> tuple[int, str]:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _reply(client: openai.OpenAI, model: str) -> str:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Name a colour"}], max_tokens=8, seed=7
    )
    assert answer.model == model
    return answer.choices[0].message.content or ""


def test_each_adapter_answers_differently_from_the_base_and_each_other(server: runtime_server.RuntimeServer) -> None:
    client = server.client(KEY)
    base, sql, chat = _reply(client, "tiny"), _reply(client, "tiny:sql"), _reply(client, "tiny:chat")
    assert len({base, sql, chat}) == 3
    assert sql == _reply(client, "tiny:sql")
    completion = client.completions.create(model="tiny:sql", prompt="a b", max_tokens=4, stream=True)
    chunks = list(completion)
    assert {chunk.model for chunk in chunks} == {"tiny:sql"}
    responses = [
        client.responses.create(model=model, input="Name a colour", max_output_tokens=16, temperature=1.0)
        for model in ("tiny", "tiny:sql")
    ]
    assert responses[1].model == "tiny:sql"
    assert responses[0].output_text != responses[1].output_text


def test_models_lists_adapters_with_their_parent(server: runtime_server.RuntimeServer) -> None:
    client = server.client(KEY)
    listed = {model.id: model.model_dump() for model in client.models.list()}
    assert list(listed) == ["tiny", "tiny:sql", "tiny:chat"]
    assert "parent" not in listed["tiny"]
    assert listed["tiny:sql"]["parent"] == listed["tiny:sql"]["root"] == "tiny"
    assert "Embeddings" not in listed["tiny:sql"]["capabilities"]
    assert client.models.retrieve("tiny:chat").model_dump()["parent"] == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("tiny:absent")


def test_unknown_adapter_is_404_and_embeddings_with_an_adapter_400(server: runtime_server.RuntimeServer) -> None:
    client = server.client(KEY)
    with pytest.raises(openai.NotFoundError) as missing:
        _reply(client, "tiny:absent")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="LoRA adapter") as refused:
        client.embeddings.create(model="tiny:sql", input="x")
    assert refused.value.param == "model"
    status, text = _post(server, "/v1/rerank", {"model": "tiny:sql", "query": "q", "documents": ["d"]})
    assert status == 400 and "send Rerank requests to `tiny`" in text


def test_live_load_and_unload_behind_the_key(server: runtime_server.RuntimeServer, root: pathlib.Path) -> None:
    client = server.client(KEY)
    body = {"lora_name": "extra", "lora_path": str(root / "extra")}
    assert _post(server, "/v1/load_lora_adapter", body, "bad")[0] == 401
    status, text = _post(server, "/v1/load_lora_adapter", body)
    assert (status, text.startswith("Success")) == (200, True)
    assert "tiny:extra" in {model.id for model in client.models.list()}
    assert _reply(client, "tiny:extra") not in {_reply(client, "tiny"), _reply(client, "tiny:sql")}
    assert _post(server, "/v1/unload_lora_adapter", {"lora_name": "extra"})[0] == 200
    with pytest.raises(openai.NotFoundError):
        _reply(client, "tiny:extra")
    assert _post(server, "/v1/unload_lora_adapter", {"lora_name": "extra"})[0] == 404


@pytest.mark.parametrize(
    "path", ["/etc", "{root}/../outside", "{root}/sql/../../outside", "relative/sql", "{root}/escape"]
)
def test_live_loads_outside_the_trusted_root_are_refused(
    server: runtime_server.RuntimeServer, root: pathlib.Path, path: str
) -> None:
    outside = root.parent / "outside"
    outside.mkdir(exist_ok=True)
    if not (root / "escape").is_symlink():
        (root / "escape").symlink_to(outside)
    status, text = _post(server, "/v1/load_lora_adapter", {"lora_name": "evil", "lora_path": path.format(root=root)})
    assert status == 400, text
    assert json.loads(text)["error"]["param"] == "lora_path"
    assert "tiny:evil" not in {model.id for model in server.client(KEY).models.list()}


def test_engine_without_live_adapters_answers_400(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").mkdir()
    environment = runtime_server.env(LLMSERVER_ADAPTER_ROOT=str(tmp_path))
    with runtime_server.start(
        tmp_path, "fake", "unused", "tiny", extra=("live_adapters=false",), environment=environment
    ) as static:
        status, text = _post(static, "/v1/load_lora_adapter", {"lora_name": "a", "lora_path": str(tmp_path / "a")})
    assert status == 400 and "live_adapters=false" in text


def test_bad_adapter_arguments_fail_start_with_a_clear_message(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    base = [sys.executable, "-m", "llmserver_runtime", "serve", "--served-model-name", "m", "--model", str(model)]
    bad_name = subprocess.run(
        [*base, "--backend", "fake", "--adapter", "no good=/x"],
        capture_output=True,
        text=True,
        env=runtime_server.env(),
    )
    assert bad_name.returncode == 2 and "--adapter:" in bad_name.stderr and "must be 1-63" in bad_name.stderr
    missing = subprocess.run(
        [*base, "--backend", "llama-cpp", "--adapter", f"sql={tmp_path / 'absent'}"],
        capture_output=True,
        text=True,
        env=runtime_server.env(),
    )
    assert missing.returncode == 1 and f"adapter sql: path {tmp_path / 'absent'} does not exist" in missing.stderr
