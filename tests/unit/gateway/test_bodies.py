"""Parsing a request body: every malformed body is an APIError 400, never another exception."""

from __future__ import annotations

import pytest

from llmserver_api.protocol import errors
from llmserver_gateway import bodies


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": [1, {"b": []}]}', 4), ('{"s": "[[[[{{{{"}', 1), ('"[[["', 0), ('{"q": "\\"[["}', 1), ("[]", 1),
])
def test_depth_ignores_brackets_inside_strings(text: str, expected: int) -> None:
    assert bodies.depth(text) == expected


@pytest.mark.parametrize(("body", "code"), [
    (b"[" * 5000 + b"]" * 5000, "json_too_deep"),
    (b'{"a":' + b"[" * 10 + b"]" * 10 + b"}", "json_too_deep"),  # depth 11 over a limit of 8
    (b'{"a": "\\ud800"}', "invalid_unicode"),
    (b'{"a": "\xed\xa0\x80"}', "invalid_encoding"),  # a raw surrogate is not UTF-8
    (b'{"a": 1', None),
    (b"42", None),
    (b"[" * 5 + b"]" * 4, None),  # shallow, broken
])
def test_bad_bodies_are_400s(body: bytes, code: str | None) -> None:
    with pytest.raises(errors.APIError) as raised:
        bodies.parse(body, max_depth=8)
    assert raised.value.status_code == 400
    assert raised.value.detail.code == code


def test_a_good_body_parses_and_a_surrogate_pair_is_fine() -> None:
    assert bodies.parse(b'{"model": "m", "x": "\\ud83d\\ude00", "d": [[[]]]}', max_depth=8)["x"] == "\U0001F600"


def test_the_lone_surrogate_path_names_the_parameter() -> None:
    payload = {"messages": [{"content": "ok"}, {"content": ["fine", "\ud800"]}]}
    assert bodies.lone_surrogate_path(payload, "") == "messages[1].content[1]"
