"""Issue 17: every request field is honoured, accepted as output-neutral, or refused by name.

Through the official openai SDK against a live `serve` process on the fake backend: fields that do
not change output are accepted, generation-changing fields the engine does not declare and unknown
fields (typos) are 400s naming them with code unsupported_parameter, and the response bodies carry
what OpenAI's schema requires (`message.refusal`, `logprobs`, `system_fingerprint`)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from testkit import runtime_server

USER = [{"role": "user", "content": "hello"}]


def _refusal(call: object, **kwargs: object) -> dict[str, str]:
    with pytest.raises(openai.BadRequestError) as caught:
        call(**kwargs)  # type: ignore[operator]
    body = caught.value.body
    assert isinstance(body, dict)
    return body.get("error", body)  # the SDK may hand back the inner object


def test_output_neutral_fields_are_accepted(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    plain = client.chat.completions.create(model="tiny", messages=USER, seed=3, max_tokens=8)
    neutral = client.chat.completions.create(
        model="tiny", messages=USER, seed=3, max_tokens=8,
        user="u-1", metadata={"team": "a"}, store=False, service_tier="auto", parallel_tool_calls=True,
        presence_penalty=0, frequency_penalty=0.0, logprobs=False, response_format={"type": "text"},
        tool_choice="none", stream_options=None, extra_body={"top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0},
    )  # fmt: skip
    assert neutral.choices[0].message.content == plain.choices[0].message.content
    text = client.completions.create(model="tiny", prompt="hi", max_tokens=4, user="u", best_of=1, suffix="")
    assert text.choices[0].text


@pytest.mark.parametrize(
    "field",
    [
        {"prediction": {"type": "content", "content": "x"}},
        {"audio": {"voice": "alloy", "format": "wav"}},
        {"modalities": ["text", "audio"]},
        {"reasoning_effort": "low"},
        {"web_search_options": {}},
        {"functions": [{"name": "f", "parameters": {}}]},
    ],
    ids=lambda field: next(iter(field)),
)
def test_generation_fields_the_engine_lacks_are_refused_by_name(
    fake_server: runtime_server.RuntimeServer, field: dict[str, object]
) -> None:
    client = fake_server.client()
    (name,) = field
    error = _refusal(client.chat.completions.create, model="tiny", messages=USER, extra_body=field)
    assert (error["param"], error["code"], error["type"]) == (name, "unsupported_parameter", "invalid_request_error")
    assert "fake" in error["message"]


def test_completion_fields_the_engine_lacks_are_refused(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    for kwargs, name in (({"suffix": "end"}, "suffix"), ({"best_of": 3}, "best_of")):
        error = _refusal(client.completions.create, model="tiny", prompt="hi", **kwargs)
        assert (error["param"], error["code"]) == (name, "unsupported_parameter")


def test_unknown_fields_are_refused_not_ignored(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    error = _refusal(client.chat.completions.create, model="tiny", messages=USER, extra_body={"temprature": 0.1})
    assert (error["param"], error["code"]) == ("temprature", "unsupported_parameter")
    assert "Unrecognized request argument supplied: temprature" in error["message"]
    nested = [{"role": "user", "content": "hi", "nmae": "bob"}]
    error = _refusal(client.chat.completions.create, model="tiny", messages=nested)
    assert error["param"] == "messages[0].nmae"
    error = _refusal(client.completions.create, model="tiny", prompt="hi", extra_body={"ecoh": True})
    assert error["param"] == "ecoh"


def test_top_logprobs_needs_logprobs(fake_server: runtime_server.RuntimeServer) -> None:
    error = _refusal(fake_server.client().chat.completions.create, model="tiny", messages=USER, top_logprobs=2)
    assert (error["param"], error["code"]) == ("top_logprobs", "invalid_value")


def test_bodies_carry_what_openais_schema_requires(fake_server: runtime_server.RuntimeServer) -> None:
    payload = {"model": "tiny", "messages": USER, "max_tokens": 4}
    body = httpx.post(fake_server.url + "/v1/chat/completions", json=payload, timeout=30).json()
    choice = body["choices"][0]
    assert choice["message"]["refusal"] is None and "content" in choice["message"]
    assert choice["logprobs"] is None
    assert body["system_fingerprint"].startswith("fp_") and body["service_tier"] == "default"
    with httpx.stream(
        "POST", fake_server.url + "/v1/chat/completions", json={**payload, "stream": True}, timeout=30
    ) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert {chunk["system_fingerprint"] for chunk in chunks} == {body["system_fingerprint"]}
    assert all(choice["logprobs"] is None for chunk in chunks for choice in chunk["choices"])
    text = httpx.post(fake_server.url + "/v1/completions", json={"model": "tiny", "prompt": "hi"}, timeout=30).json()
    assert text["system_fingerprint"] == body["system_fingerprint"] and text["choices"][0]["logprobs"] is None
