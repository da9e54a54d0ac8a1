"""Label and field selectors, and the simple JSONPath of CRD printer columns, for the API emulator."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    """An unparseable selector (HTTP 400)."""


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


_SET = re.compile(r"^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$")
_CMP = re.compile(r"^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$")


def _label_term(term: str) -> Predicate:
    if match := _SET.match(term):
        key, op, raw = match.groups()
        values = {value.strip() for value in raw.split(",") if value.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _CMP.match(term):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if term.startswith("!") and re.fullmatch(r"![^\s!=(),]+", term):
        return lambda labels: term[1:] not in labels
    if re.fullmatch(r"[^\s!=(),]+", term):
        return lambda labels: term in labels
    raise SelectorError(f"unable to parse label selector term {term!r}")


def label_selector(selector: str | None) -> Predicate:
    """A predicate over objects for a `labelSelector` query (=, ==, !=, in, notin, exists, !exists)."""
    if not selector:
        return lambda obj: True
    terms = [_label_term(term) for term in _split(selector)]
    return lambda obj: all(term((obj.get("metadata") or {}).get("labels") or {}) for term in terms)


def lookup(obj: Any, dotted: str) -> Any:
    """Value at a dotted path (`status.phase`), or None."""
    node = obj
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def field_selector(selector: str | None) -> Predicate:
    """A predicate for a `fieldSelector` (=, ==, != on any dotted field path)."""
    if not selector:
        return lambda obj: True
    checks = []
    for term in _split(selector):
        match = _CMP.match(term)
        if not match:
            raise SelectorError(f"unable to parse field selector term {term!r}")
        path, op, value = match.groups()
        checks.append((path, op == "!=", value))

    def predicate(obj: dict[str, Any]) -> bool:
        for path, negate, value in checks:
            actual = lookup(obj, path)
            equal = ("" if actual is None else str(actual)) == value
            if equal == negate:
                return False
        return True

    return predicate


def json_path(obj: Any, path: str) -> Any:
    """The subset of JSONPath CRD printer columns use: `.a.b`, `.a[0].b`, `.a[?(@.k=="v")].b`."""
    node = obj
    for token in re.findall(r"\.([^.\[]+)|\[(\d+)\]|\[\?\(@\.([^=]+)==[\"']([^\"']*)[\"']\)\]", path):
        key, index, filter_key, filter_value = token
        if key:
            node = node.get(key) if isinstance(node, dict) else None
        elif index:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        else:
            matches = [item for item in node or [] if isinstance(item, dict) and str(item.get(filter_key)) == filter_value]
            node = matches[0] if matches else None
        if node is None:
            return None
    return node
