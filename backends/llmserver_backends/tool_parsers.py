"""Tool calls out of generated text: the forced formats the server constrains decoding to, and the
common formats models write on their own (`tool_choice: auto`).

Forced (decoding constrained by a JSON schema, so the text always parses when generation ends):
  named function  the text is the arguments object itself;
  required        a JSON array of `{"name": ..., "parameters": {...}}` (vLLM's format), one item
                  when parallel tool calls are off.
Auto (whatever the model's template taught it; tried in this order):
  Hermes / Qwen   `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, any number, after
                  optional content;
  Mistral         `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`;
  Llama 3 JSON    the whole answer (optionally after `<|python_tag|>`) is
                  `{"name": ..., "parameters": {...}}`, a list of them, or several joined by `;`.
Pure functions: no engine, no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

HERMES_START, HERMES_END = "<tool_call>", "</tool_call>"
MISTRAL_START = "[TOOL_CALLS]"
PYTHON_TAG = "<|python_tag|>"
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
_HERMES = re.compile(re.escape(HERMES_START) + r"(.*?)(?:" + re.escape(HERMES_END) + r"|$)", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Call:
    """One parsed call: the function's name and its arguments as JSON text."""

    name: str
    arguments: str


@dataclasses.dataclass(frozen=True)
class Parsed:
    """Text split into what the user reads (None when only calls) and the calls."""

    content: str | None
    calls: tuple[Call, ...] = ()


def _call(item: Any, names: frozenset[str] | None) -> Call | None:
    """`{"name", "arguments"|"parameters"}` as a Call, when it is one (and names a known tool)."""
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        return None
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, Mapping) or (names is not None and item["name"] not in names):
        return None
    return Call(item["name"], json.dumps(arguments, ensure_ascii=False))


def _calls(items: Sequence[Any], names: frozenset[str] | None) -> tuple[Call, ...] | None:
    calls = [_call(item, names) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return tuple(c for c in calls if c is not None)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_auto(text: str, names: frozenset[str] | None = None) -> Parsed:
    """Calls in `text` in any of the auto formats; the text as content when it holds none (or a
    malformed one: a half-written call is shown, never dropped). `names` limits calls to tools
    the request offered."""
    if HERMES_START in text:
        found = [_json(body.strip()) for body in _HERMES.findall(text)]
        calls = _calls(found, names)
        if calls:
            content = text[: text.index(HERMES_START)].strip()
            return Parsed(content or None, calls)
        return Parsed(text)
    stripped = text.strip()
    if stripped.startswith(MISTRAL_START):
        found = _json(stripped[len(MISTRAL_START) :].strip())
        calls = _calls(found if isinstance(found, list) else [found], names)
        return Parsed(None, calls) if calls else Parsed(text)
    if stripped.startswith(PYTHON_TAG):
        stripped = stripped[len(PYTHON_TAG) :].strip()
    if stripped.startswith(("{", "[")):
        found = _json(stripped)
        if found is None and ";" in stripped:
            found = [_json(part) for part in stripped.split(";") if part.strip()]
        if isinstance(found, Mapping):
            found = [found]
        calls = _calls(found, names) if isinstance(found, list) else None
        return Parsed(None, calls) if calls else Parsed(text)
    return Parsed(text)


def may_start_call(text: str) -> bool:
    """Whether `text` (the answer so far) could still turn into a call in an auto format, so a
    stream must hold it back: it starts like Mistral/Llama JSON, or holds `<tool_call>` or ends in
    a prefix of it."""
    stripped = text.lstrip()
    if not stripped:
        return True
    for marker in (MISTRAL_START, PYTHON_TAG):
        if marker.startswith(stripped) or stripped.startswith(marker):
            return True
    if stripped[0] in "{[" or HERMES_START in text:
        return True
    return any(text.endswith(HERMES_START[:k]) for k in range(1, len(HERMES_START)))


def hermes_split(text: str) -> tuple[str, str]:
    """(content safe to stream now, the rest held back) for text that is no Mistral/Llama call:
    everything from `<tool_call>`, or from a trailing prefix of it, is held."""
    if HERMES_START in text:
        at = text.index(HERMES_START)
        return text[:at], text[at:]
    for k in range(len(HERMES_START) - 1, 0, -1):
        if text.endswith(HERMES_START[:k]):
            return text[:-k], text[-k:]
    return text, ""


def required_schema(functions: Sequence[tuple[str, Mapping[str, Any] | None]], parallel: bool) -> dict[str, Any]:
    """The JSON schema `tool_choice: required` constrains decoding to: an array of one call (or
    more with parallel tool calls), each naming one of the functions with arguments valid for it."""
    items = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, "parameters": dict(parameters or NO_ARGUMENTS)},
            "required": ["name", "parameters"],
            "additionalProperties": False,
        }
        for name, parameters in functions
    ]
    schema: dict[str, Any] = {"type": "array", "items": items[0] if len(items) == 1 else {"anyOf": items}, "minItems": 1}
    if not parallel:
        schema["maxItems"] = 1
    return schema


def named_schema(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The schema a named tool_choice constrains decoding to: the function's arguments object."""
    return dict(parameters or NO_ARGUMENTS)


def parse_required(text: str) -> tuple[Call, ...] | None:
    """The calls of a `required` answer (None when it does not parse: cut short by max_tokens)."""
    found = _json(text)
    return _calls(found, None) if isinstance(found, list) else None
