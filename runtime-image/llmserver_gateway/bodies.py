"""Reading and parsing a request body within bounds, before anything else looks at it.

The body is refused (413) by its Content-Length before a byte is read, or as soon as the bytes
read pass the limit, so a client cannot make the gateway buffer more than `max_body_bytes`. Only
then is it parsed, once: UTF-8, nesting depth (counted on the text, so the parser never recurses
past it) and lone UTF-16 surrogates (which no encoder can forward) are checked, and every malformed
body is a 400 in the OpenAI error shape, never a 500. Parsing is synchronous, so at most one parse
is in memory at a time; callers drop the parsed object before they wait on an upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

from aiohttp import web

from llmserver_api.protocol import errors

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# An escaped UTF-16 surrogate (\uD800-\uDFFF); json.loads joins valid pairs into one character, so a
# surrogate left in a parsed string was a lone one. Raw surrogates are not valid UTF-8 at all.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def too_large(limit: int) -> errors.APIError:
    """413 for a body over `limit` bytes."""
    return errors.APIError(
        413, f"The request body is larger than the gateway accepts ({limit} bytes).", code="request_too_large"
    )


async def read(request: web.Request, limit: int, timeout: float) -> bytes:
    """The body, or APIError 413 as soon as it is known to be larger than `limit`, or 408 when the
    client takes longer than `timeout` seconds to send it (it holds a concurrency slot meanwhile)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise errors.APIError(
            408, f"The request body did not arrive within {timeout:g} s.", code="request_timeout"
        ) from None
    return b"".join(chunks)


def parse(body: bytes, max_depth: int) -> dict[str, Any]:
    """The body as a JSON object; APIError 400 for anything else (never another exception)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.invalid_request(
            f"The request body is not valid UTF-8 (byte {exc.start}).", code="invalid_encoding"
        ) from None
    if text.count("[") + text.count("{") > max_depth and (found := depth(text)) > max_depth:
        raise errors.invalid_request(
            f"The request body nests JSON {found} levels deep; at most {max_depth} are allowed.",
            code="json_too_deep",
        )
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise errors.invalid_request("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    if _SURROGATE_ESCAPE.search(text) is not None and (path := lone_surrogate_path(payload, "")) is not None:
        raise errors.invalid_request(
            f"{path or 'The request body'} contains a lone UTF-16 surrogate, which is not valid Unicode text.",
            param=path or None,
            code="invalid_unicode",
        )
    return payload


def depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` (brackets inside strings not counted)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, max(itertools.accumulate(map(_STEP.__getitem__, brackets))))


def _bad_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lone_surrogate_path(value: Any, path: str) -> str | None:
    """The parameter path (`messages[0].content`) of the first string holding a lone surrogate."""
    if isinstance(value, str):
        return path if _bad_text(value) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := lone_surrogate_path(item, f"{path}[{index}]")) is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if _bad_text(key):
                return path  # a bad key: name the object that holds it
            if (found := lone_surrogate_path(item, f"{path}.{key}" if path else str(key))) is not None:
                return found
    return None
