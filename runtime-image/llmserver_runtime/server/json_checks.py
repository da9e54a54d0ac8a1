"""Checks on a raw JSON body before the framework parses it: UTF-8, nesting depth, lone surrogates.

Pure functions over text, each returning the APIError to answer (or None). They run on every
request body, so the common case stays in C: strings are cut out with one regex, the depth is a
running sum over the remaining brackets, and the body is parsed here only when it holds an escaped
surrogate at all (to find which parameter carries a lone one)."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from llmserver_api.protocol import errors

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# An escaped UTF-16 surrogate (\uD800-\uDFFF). Pairs are fine; json.loads joins them into one
# character, so whatever surrogate is left in a parsed string was a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def decode(body: bytes) -> tuple[str | None, errors.APIError | None]:
    """The body as text, or the 400 for a body that is not UTF-8 (JSON's only encoding, RFC 8259)."""
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, errors.invalid_request(
            f"The request body is not valid UTF-8 (byte {exc.start}).", code="invalid_encoding"
        )


def depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` (brackets inside strings not counted)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, max(itertools.accumulate(map(_STEP.__getitem__, brackets))))


def check_depth(text: str, max_depth: int) -> errors.APIError | None:
    """400 when the body nests deeper than `max_depth` (a parser would recurse that deep)."""
    if text.count("[") + text.count("{") <= max_depth:
        return None  # cannot be deeper: skips the scan for most bodies
    found = depth(text)
    if found > max_depth:
        return errors.invalid_request(
            f"The request body nests JSON {found} levels deep; at most {max_depth} are allowed.",
            code="json_too_deep",
        )
    return None


def check_surrogates(text: str) -> errors.APIError | None:
    """400 naming the parameter whose string holds a lone UTF-16 surrogate (no text encoding can
    carry one to the engine's tokenizer)."""
    if _SURROGATE_ESCAPE.search(text) is None:
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None  # not JSON: the framework answers its own 400
    path = _lone_surrogate_path(parsed, "")
    if path is None:
        return None
    return errors.invalid_request(
        f"{path or 'The request body'} contains a lone UTF-16 surrogate, which is not valid Unicode text.",
        param=path or None,
        code="invalid_unicode",
    )


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _lone_surrogate_path(value: Any, path: str) -> str | None:
    """The parameter path (`input[1]`, `messages[0].content`) of the first bad string, or None."""
    if isinstance(value, str):
        return path if _has_surrogate(value) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if _has_surrogate(key):
                return path  # a bad key: name the object that holds it
            found = _lone_surrogate_path(item, child)
            if found is not None:
                return found
    return None
