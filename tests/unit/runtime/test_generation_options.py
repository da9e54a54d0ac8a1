"""Which request fields count as asking for something (issue 17): neutral values ask for nothing,
every other value of an optional field is named, and unknown fields are found at any depth."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from llmserver_backends import base
from llmserver_runtime.server.routes import common as route_common

from llmserver_api.protocol import chat, common, completions

USER = [{"role": "user", "content": "hi"}]


def _chat(**fields: Any) -> chat.ChatCompletionRequest:
    return chat.ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **fields})


def test_neutral_values_ask_for_nothing() -> None:
    neutral = _chat(
        presence_penalty=0, frequency_penalty=0.0, repetition_penalty=1.0, top_k=0, min_p=0.0, logit_bias={},
        logprobs=False, response_format={"type": "text"}, tools=[], tool_choice="none", parallel_tool_calls=True,
        modalities=["text"], user="u", metadata={"a": "b"}, store=True, service_tier="auto",
    )  # fmt: skip
    assert neutral.generation_options() == {}
    assert completions.CompletionRequest(model="m", prompt="p", best_of=1, suffix="").generation_options() == {}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"seed": 0}, {"seed": 0}),
        ({"presence_penalty": 0.5}, {"presence_penalty": 0.5}),
        ({"top_k": 1}, {"top_k": 1}),
        ({"logit_bias": {"5": -100}}, {"logit_bias": {"5": -100}}),
        ({"logprobs": True, "top_logprobs": 3}, {"logprobs": True, "top_logprobs": 3}),
        ({"logprobs": True, "top_logprobs": 0}, {"logprobs": True}),
        ({"response_format": {"type": "json_object"}}, {"response_format": {"type": "json_object"}}),
        ({"tool_choice": "required"}, {"tool_choice": "required"}),
        ({"reasoning_effort": "low"}, {"reasoning_effort": "low"}),
        ({"modalities": ["text", "audio"]}, {"modalities": ["text", "audio"]}),
    ],
)
def test_asking_values_are_named(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _chat(**fields).generation_options() == expected


def test_completion_logprobs_zero_asks_for_the_chosen_tokens() -> None:
    assert completions.CompletionRequest(model="m", prompt="p", logprobs=0).generation_options() == {"logprobs": 0}


def test_unknown_fields_are_found_at_any_depth() -> None:
    request = chat.ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "temprature": 1,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "bold": True}], "nmae": "a"}],
        }
    )
    assert sorted(common.unknown_fields(request)) == ["messages[0].content[0].bold", "messages[0].nmae", "temprature"]


@pytest.mark.parametrize("bias", [{"x": 1}, {"1": 101}, {"-1": 1}, {str(i): 1 for i in range(1025)}])
def test_logit_bias_is_bounded(bias: dict[str, float]) -> None:
    with pytest.raises(pydantic.ValidationError):
        _chat(logit_bias=bias)


def test_sampling_params_follow_the_options() -> None:
    request = _chat(seed=7, top_k=2, min_p=0.1, logit_bias={"3": 5}, logprobs=True, top_logprobs=4, temperature=0.5)
    params = route_common.sampling(request, request.generation_options(), max_tokens=9, choice=2)
    assert params == base.SamplingParams(
        max_tokens=9, temperature=0.5, top_p=1.0, seed=9, top_k=2, min_p=0.1, logit_bias={3: 5.0}, logprobs=4
    )
    plain = _chat()
    assert route_common.sampling(plain, plain.generation_options(), max_tokens=None, choice=0) == base.SamplingParams()
