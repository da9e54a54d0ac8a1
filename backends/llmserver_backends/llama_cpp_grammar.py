"""llama.cpp grammars for structured outputs, from llama-cpp-python's JSON-schema converter.

The converter bundled with llama-cpp-python skips numeric bounds (`minimum`, `maximum`,
`exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`): output could break the schema while the
request believed it constrained. So an integer range of at most MAX_ENUM values is rewritten as
the equivalent `enum` (which the converter does follow), and any other numeric bound is refused
with a 400 naming the request field: never ignored silently.
"""

from __future__ import annotations

import json
import math
from typing import Any

import llama_cpp
from llama_cpp import llama_grammar

from llmserver_backends import base, structured

MAX_ENUM = 1024
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def grammar(constraint: structured.JsonConstraint | None) -> llama_cpp.LlamaGrammar | None:
    """The grammar for the constraint: the JSON-schema converter's, or llama.cpp's JSON grammar."""
    if constraint is None:
        return None
    try:
        if constraint.schema is None:
            return llama_cpp.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
        schema = followable(json.loads(constraint.schema), constraint.param)
        return llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except (ValueError, KeyError, TypeError, RuntimeError, NotImplementedError) as error:
        raise base.UnsupportedParameter(constraint.param, f"llama.cpp cannot follow this JSON schema: {error}") from error


def followable(schema: Any, param: str) -> Any:
    """`schema` with small integer ranges as enums; other numeric bounds are UnsupportedParameter."""
    if isinstance(schema, list):
        return [followable(item, param) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounds = [key for key in _BOUNDS if key in schema and not isinstance(schema[key], dict)]
    if bounds and "enum" not in schema and "const" not in schema:
        low, high = _integer_range(schema)
        if low is None or high is None or high - low >= MAX_ENUM or "multipleOf" in schema:
            raise base.UnsupportedParameter(
                param,
                f"the llama-cpp engine cannot enforce {', '.join(bounds)} in a JSON schema "
                f"(only integer ranges of at most {MAX_ENUM} values)",
            )
        rest = {key: value for key, value in schema.items() if key not in _BOUNDS}
        return {**rest, "type": "integer", "enum": list(range(low, high + 1))}
    return {key: followable(value, param) if key not in ("enum", "const") else value for key, value in schema.items()}


def _integer_range(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    if schema.get("type") != "integer":
        return None, None
    low = schema.get("minimum")
    high = schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = max(low if low is not None else -(2**63), int(schema["exclusiveMinimum"]) + 1)
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = min(high if high is not None else 2**63, int(schema["exclusiveMaximum"]) - 1)
    if low is None or high is None:
        return None, None
    return math.ceil(low), math.floor(high)
