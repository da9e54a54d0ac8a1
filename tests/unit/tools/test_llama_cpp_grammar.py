"""llama.cpp grammars follow every bound of a schema or refuse it: small integer ranges become
enums (which the bundled converter enforces), other numeric bounds are a 400 naming the field."""

from __future__ import annotations

import pytest
from llmserver_backends import base, llama_cpp_grammar, structured


def test_small_integer_ranges_become_enums() -> None:
    schema = {
        "type": "object",
        "properties": {
            "level": {"type": "integer", "minimum": 0, "maximum": 3},
            "odd": {"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 4, "title": "kept"},
            "name": {"type": "string", "enum": ["a"]},
        },
    }
    followed = llama_cpp_grammar.followable(schema, "response_format")
    assert followed["properties"]["level"] == {"type": "integer", "enum": [0, 1, 2, 3]}
    assert followed["properties"]["odd"] == {"type": "integer", "title": "kept", "enum": [2, 3]}
    assert followed["properties"]["name"] == {"type": "string", "enum": ["a"]}


@pytest.mark.parametrize(
    "bounded",
    [
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "integer", "minimum": 0},
        {"type": "integer", "minimum": 0, "maximum": 10**6},
        {"type": "integer", "minimum": 0, "maximum": 8, "multipleOf": 2},
    ],
)
def test_other_numeric_bounds_are_refused_by_field(bounded: dict[str, object]) -> None:
    with pytest.raises(base.UnsupportedParameter) as raised:
        llama_cpp_grammar.grammar(structured.JsonConstraint.of({"type": "array", "items": bounded}, "tools"))
    assert raised.value.param == "tools"


def test_grammars_compile() -> None:
    assert llama_cpp_grammar.grammar(None) is None
    assert llama_cpp_grammar.grammar(structured.JsonConstraint()) is not None
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 2}}}
    assert llama_cpp_grammar.grammar(structured.JsonConstraint.of(schema)) is not None
