"""The one error shape: constructors and validation-error mapping."""

from __future__ import annotations

import json

import pydantic
import pytest
from llmserver_api.protocol import chat, errors


def test_model_not_found_is_404_naming_the_model_param() -> None:
    error = errors.model_not_found("gpt-9")
    assert error.status_code == 404
    assert json.loads(error.body()) == {
        "error": {
            "message": "The model `gpt-9` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def test_rate_limited_carries_whole_second_retry_after() -> None:
    error = errors.rate_limited("busy", retry_after_s=0.2)
    assert error.status_code == 429
    assert error.headers == {"Retry-After": "1"}
    assert errors.rate_limited("busy", retry_after_s=7.6).headers["Retry-After"] == "8"


def test_server_error_says_nothing_internal() -> None:
    body = errors.server_error().to_dict()["error"]
    assert body == {
        "message": errors.GENERIC_SERVER_MESSAGE,
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }


def _validation_errors(payload: dict) -> list[dict]:
    with pytest.raises(pydantic.ValidationError) as caught:
        chat.ChatCompletionRequest.model_validate(payload)
    return [{**e, "loc": ("body", *e["loc"])} for e in caught.value.errors()]


def test_validation_error_names_the_field() -> None:
    error = errors.from_validation_errors(
        _validation_errors({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 5})
    )
    assert error.status_code == 400
    assert error.detail.param == "temperature"
    assert "temperature" in error.detail.message


def test_validation_error_in_a_nested_union_points_at_the_message() -> None:
    payload = {"model": "m", "messages": [{"role": "user", "content": [{"type": "audio", "x": 1}]}]}
    error = errors.from_validation_errors(_validation_errors(payload))
    assert error.detail.param is not None and error.detail.param.startswith("messages[0].content")


def test_missing_field_is_named() -> None:
    error = errors.from_validation_errors(_validation_errors({"messages": [{"role": "user", "content": "x"}]}))
    assert error.detail.param == "model"


def test_body_level_errors_say_what_is_wrong_without_a_bogus_param() -> None:
    bad_json = errors.from_validation_errors([{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error"}])
    assert (bad_json.detail.message, bad_json.detail.param) == ("The request body is not valid JSON.", None)
    not_object = errors.from_validation_errors([{"type": "model_attributes_type", "loc": ("body",), "msg": "x"}])
    assert not_object.detail.message == "The request body must be a JSON object."


def test_parse_error_recognises_only_openai_shaped_bodies() -> None:
    detail = errors.parse_error({"error": {"message": "m", "type": "t", "param": None, "code": "c"}})
    assert detail is not None and detail.code == "c"
    assert errors.parse_error({"detail": "nope"}) is None
    assert errors.parse_error(["x"]) is None


def test_sse_event_is_one_data_line() -> None:
    event = errors.timeout().sse_event()
    assert event.startswith(b"data: {") and event.endswith(b"\n\n")
    assert json.loads(event[6:])["error"]["code"] == "timeout"
