"""The raw-body checks (json_checks) and the limits' env reading, without a server."""

from __future__ import annotations

import json

import pydantic
import pytest
from llmserver_runtime.server import json_checks, limits, request_bounds

from llmserver_api.protocol import errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", 1),
        ('{"a": [1, {"b": [[]]}]}', 5),
        ('{"a": "[[[[[[[[", "b": "}}}}"}', 1),  # brackets in strings are text
        ('{"a": "quote \\" [[[ still text"}', 1),  # an escaped quote does not end the string
        ('{"a": "\\\\", "b": [[1]]}', 3),  # an escaped backslash does
        ("[" * 300 + "]" * 300, 300),
        ("1", 0),
    ],
)
def test_depth_counts_nesting_outside_strings(text: str, expected: int) -> None:
    assert json_checks.depth(text) == expected


def test_check_depth_refuses_only_what_is_deeper_than_the_limit() -> None:
    assert json_checks.check_depth("[" * 8 + "]" * 8, 8) is None
    error = json_checks.check_depth("[" * 9 + "]" * 9, 8)
    assert isinstance(error, errors.APIError) and error.status_code == 400 and error.detail.code == "json_too_deep"


@pytest.mark.parametrize(
    ("text", "param"),
    [
        ('{"input": ["ok", "x\\ud800"]}', "input[1]"),
        ('{"messages": [{"content": [{"text": "\\udc00"}]}]}', "messages[0].content[0].text"),
        ('{"input": "\\uDBFF\\u0041"}', "input"),  # a high surrogate followed by a non-surrogate
    ],
)
def test_lone_surrogates_are_named_by_their_path(text: str, param: str) -> None:
    error = json_checks.check_surrogates(text)
    assert error is not None and error.detail.param == param and error.detail.code == "invalid_unicode"


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    assert json_checks.check_surrogates('{"input": "\\ud83d\\ude00"}') is None
    assert json_checks.check_surrogates(json.dumps({"input": "\\ud800 is only text here"})) is None
    assert json_checks.check_surrogates("not json \\ud800") is None  # the framework's 400, not ours


def test_decode_refuses_what_is_not_utf8() -> None:
    assert json_checks.decode(b'{"a": "\xc3\xa9"}')[0] == '{"a": "é"}'
    text, error = json_checks.decode(b'{"a": "\xed\xa0\x80"}')  # a surrogate as raw bytes
    assert text is None and error is not None and error.detail.code == "invalid_encoding"


def test_limits_come_from_env_and_refuse_bad_values() -> None:
    loaded = limits.InputLimits.from_env({"LLMSERVER_MAX_BODY_BYTES": "4096", "LLMSERVER_MAX_IMAGES": "0", "OTHER": "1"})
    assert loaded.max_body_bytes == 4096 and loaded.max_images == 0
    assert loaded.max_inputs == limits.InputLimits().max_inputs
    assert "LLMSERVER_MAX_JSON_DEPTH" in limits.InputLimits.env_names()
    with pytest.raises(pydantic.ValidationError):
        limits.InputLimits.from_env({"LLMSERVER_MAX_BODY_BYTES": "10"})


def test_batch_refuses_empty_oversized_and_token_id_batches() -> None:
    assert request_bounds.batch("a", "input", 2, "input is") == ["a"]
    assert request_bounds.batch(["a", "b"], "input", 2, "input is") == ["a", "b"]
    for value, code in (([], None), (["a"] * 3, "too_many_inputs"), ([1, 2], "unsupported_parameter")):
        with pytest.raises(errors.APIError) as caught:
            request_bounds.batch(value, "input", 2, "input is")
        assert caught.value.detail.param == "input" and caught.value.detail.code == code
