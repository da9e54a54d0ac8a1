"""Turns the pydantic models into Kubernetes structural openAPIV3Schemas.

Pydantic emits JSON Schema 2020-12 ($ref, anyOf-with-null, numeric exclusiveMinimum); a CRD needs
OpenAPI v3 in structural form (everything inlined, no null branches, boolean exclusiveMinimum,
`x-kubernetes-*` markers). Cross-field rules from `rules` become `x-kubernetes-validations`.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic

from llmserver_api import applenode, llmserver, rules

Schema = dict[str, Any]

_KEPT = (
    "type", "description", "enum", "default", "minimum", "maximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "format",
)


def structural_schema(model: type[pydantic.BaseModel]) -> Schema:
    """The structural schema of one pydantic model, every $ref inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions)


def _resolve(node: Schema, definitions: Schema) -> Schema:
    while "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _resolve({**node["allOf"][0], **rest}, definitions)
    return node


def _convert(node: Schema, definitions: Schema) -> Schema:
    node = _resolve(node, definitions)
    if "anyOf" in node:
        # Optional fields: the API server prunes nulls of non-nullable fields before defaulting,
        # which matches pydantic treating None as absent, so the null branch is simply dropped.
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"a structural schema cannot express the union {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**_resolve(options[0], definitions), **rest}
    out: Schema = {key: copy.deepcopy(node[key]) for key in _KEPT if key in node}
    if "const" in node:
        out["enum"] = [node["const"]]
    if out.get("default", 0) is None:
        del out["default"]
    if "exclusiveMinimum" in node:
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        if "properties" in node:
            out["properties"] = {name: _convert(sub, definitions) for name, sub in node["properties"].items()}
            if node.get("required"):
                out["required"] = sorted(node["required"])
        additional = node.get("additionalProperties")
        if isinstance(additional, dict) and additional:
            out["additionalProperties"] = _convert(additional, definitions)
        elif additional is True or ("properties" not in node and not additional):
            out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "array":
        out["items"] = _convert(node.get("items", {}), definitions)
        if node.get("uniqueItems"):
            out["x-kubernetes-list-type"] = "set"
    return out


def _attach(schema: Schema, path: tuple[str, ...], rule_set: tuple[rules.Rule, ...]) -> None:
    node = schema
    for name in path:
        node = node["properties"][name]
    node["x-kubernetes-validations"] = [rule.to_validation() for rule in rule_set]


def _top_level(spec: Schema, status: Schema, description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object", "description": "Standard object metadata (name, namespace, labels, ...)."},
            "spec": spec,
            "status": status,
        },
    }


def llmserver_schema() -> Schema:
    """openAPIV3Schema of LLMServer, with every CEL rule attached where it belongs."""
    spec = structural_schema(llmserver.LLMServerSpec)
    spec["properties"]["capabilities"]["x-kubernetes-list-type"] = "set"
    _attach(spec, (), rules.spec_rules())
    _attach(spec, ("source",), rules.SOURCE_RULES)
    _attach(spec, ("source", "s3"), rules.S3_RULES)
    _attach(spec, ("transformers",), rules.TRANSFORMERS_RULES)
    _attach(spec, ("autoscaling",), rules.AUTOSCALING_RULES)
    adapter_source = spec["properties"]["adapters"]["items"]["properties"]["source"]
    _attach(adapter_source, (), rules.SOURCE_RULES)
    _attach(adapter_source, ("s3",), rules.S3_RULES)
    schema = _top_level(
        spec,
        structural_schema(llmserver.LLMServerStatus),
        "LLMServer serves one model through the shared OpenAI-compatible gateway.",
    )
    schema["x-kubernetes-validations"] = [rule.to_validation() for rule in rules.ROOT_RULES]
    return schema


def applenode_schema() -> Schema:
    """openAPIV3Schema of AppleNode."""
    return _top_level(
        structural_schema(applenode.AppleNodeSpec),
        structural_schema(applenode.AppleNodeStatus),
        "AppleNode is a registered Apple Silicon Mac that serves mlx and mlx-vlm models.",
    )


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Returns `value` with schema defaults filled in, as the API server does before validating."""
    if isinstance(value, dict) and "properties" in schema:
        result = dict(value)
        for name, sub in schema["properties"].items():
            if name not in result and "default" in sub:
                result[name] = copy.deepcopy(sub["default"])
            if name in result:
                result[name] = apply_defaults(sub, result[name])
        return result
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value
