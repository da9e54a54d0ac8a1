"""LoRA adapter checks every engine's runtime must pass, through the openai SDK and plain HTTP.

A test module subclasses `AdapterSurface` (named `Test...`) and provides two fixtures: `root`, the
trusted adapter directory holding adapter folders `one`, `two` and `three`, and `server`, a runtime
started with `--adapter one=ROOT/one --adapter two=ROOT/two` and `LLMSERVER_ADAPTER_ROOT=ROOT`.
Completions are greedy, so every difference is the adapter's, not sampling's."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request

import openai
import pytest

from testkit import runtime_server

PROMPT = "Once upon a time"


def greedy(client: openai.OpenAI, model: str, max_tokens: int = 12) -> str:
    """A greedy completion of PROMPT by `model`, which the answer must echo."""
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=max_tokens, temperature=0)
    assert answer.model == model
    return answer.choices[0].text


def post(
    server: runtime_server.RuntimeServer, path: str, body: dict[str, object], key: str | None = None
) -> tuple[int, str]:
    """(status, body text) of a JSON POST; HTTP errors are returned, not raised."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class AdapterSurface:
    """The shared adapter checks as tests; not collected itself (no `Test` prefix)."""

    model: str
    live: bool  # the engine loads adapters while serving (POST /v1/load_lora_adapter)

    def test_adapters_answer_differently_from_the_base_and_each_other(
        self, server: runtime_server.RuntimeServer
    ) -> None:
        client = server.client()
        base = greedy(client, self.model)
        one, two = greedy(client, f"{self.model}:one"), greedy(client, f"{self.model}:two")
        assert len({base, one, two}) == 3, (base, one, two)
        assert one == greedy(client, f"{self.model}:one")
        assert base == greedy(client, self.model)  # serving an adapter left the base model as it was
        chat = client.chat.completions.create(
            model=f"{self.model}:two", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
        )
        assert chat.model == f"{self.model}:two"

    def test_models_list_the_adapters_and_unknown_ones_are_404(self, server: runtime_server.RuntimeServer) -> None:
        client = server.client()
        listed = {model.id: model.model_dump() for model in client.models.list()}
        assert list(listed)[:3] == [self.model, f"{self.model}:one", f"{self.model}:two"]
        assert "parent" not in listed[self.model]
        assert listed[f"{self.model}:one"]["parent"] == listed[f"{self.model}:one"]["root"] == self.model
        assert client.models.retrieve(f"{self.model}:two").model_dump()["parent"] == self.model
        with pytest.raises(openai.NotFoundError) as missing:
            greedy(client, f"{self.model}:absent")
        assert missing.value.code == "model_not_found"

    def test_live_adapters(self, server: runtime_server.RuntimeServer, root: pathlib.Path) -> None:
        """Live engines load `three` and unload `one` while serving; the others refuse by name."""
        client = server.client()
        status, text = post(server, "/v1/load_lora_adapter", {"lora_name": "three", "lora_path": str(root / "three")})
        if not self.live:
            assert status == 400 and "only at start" in text, text
            return
        assert status == 200, text
        before = {greedy(client, self.model), greedy(client, f"{self.model}:two")}
        assert greedy(client, f"{self.model}:three") not in before
        assert post(server, "/v1/unload_lora_adapter", {"lora_name": "three"})[0] == 200
        with pytest.raises(openai.NotFoundError):
            greedy(client, f"{self.model}:three")
        assert post(server, "/v1/unload_lora_adapter", {"lora_name": "three"})[0] == 404
        status, text = post(server, "/v1/load_lora_adapter", {"lora_name": "x", "lora_path": "/etc"})
        assert status == 400 and json.loads(text)["error"]["param"] == "lora_path"
