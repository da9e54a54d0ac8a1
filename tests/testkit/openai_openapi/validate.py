"""Validates response bodies and stream events against OpenAI's published schemas.

The document's `$ref`s (`#/components/schemas/...`) resolve inside the vendored document itself:
the validator's root schema is the document with a top-level `$ref` to the schema wanted."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import pathlib
from collections.abc import Iterable, Iterator
from typing import Any

import jsonschema

DOCUMENT_PATH = pathlib.Path(__file__).with_name("openapi.subset.json")

CHAT = "CreateChatCompletionResponse"
CHAT_CHUNK = "CreateChatCompletionStreamResponse"
COMPLETION = "CreateCompletionResponse"
# The document gives /completions no text/event-stream schema; OpenAI streams CreateCompletionResponse
# objects whose finish_reason is null until the choice's last chunk. This derived schema says that.
COMPLETION_CHUNK = "x-CompletionStreamChunk"
EMBEDDING = "CreateEmbeddingResponse"
# With `encoding_format: "base64"` OpenAI sends each embedding as a base64 string of float32s; the
# document only describes the float array (its SDKs decode the string). This derived schema does.
EMBEDDING_BASE64 = "x-CreateEmbeddingResponseBase64"
RESPONSE = "Response"
RESPONSE_EVENT = "ResponseStreamEvent"


@functools.cache
def document() -> dict[str, Any]:
    """The vendored OpenAPI document (parsed once per process), as published."""
    return json.loads(DOCUMENT_PATH.read_text())


def _nullable_as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` (still used by some of the 3.1 document's schemas) as JSON
    Schema: the node or null. Without it a validator would refuse `finish_reason: null`."""
    if isinstance(node, list):
        return [_nullable_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_as_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False) is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _with_derived_schemas(root: dict[str, Any]) -> dict[str, Any]:
    schemas = root["components"]["schemas"]
    chunk = copy.deepcopy(schemas[COMPLETION])
    reason = chunk["properties"]["choices"]["items"]["properties"]["finish_reason"]
    chunk["properties"]["choices"]["items"]["properties"]["finish_reason"] = {"anyOf": [reason, {"type": "null"}]}
    schemas[COMPLETION_CHUNK] = chunk
    base64 = copy.deepcopy(schemas["Embedding"])
    base64["properties"]["embedding"] = {"type": "string", "contentEncoding": "base64"}
    schemas["x-EmbeddingBase64"] = base64
    response = copy.deepcopy(schemas[EMBEDDING])
    response["properties"]["data"]["items"] = {"$ref": "#/components/schemas/x-EmbeddingBase64"}
    schemas[EMBEDDING_BASE64] = response
    return root


@functools.cache
def _validator(schema_name: str) -> jsonschema.protocols.Validator:
    root = _with_derived_schemas(_nullable_as_json_schema(document()))
    root["$ref"] = f"#/components/schemas/{schema_name}"
    return jsonschema.Draft202012Validator(root)


@dataclasses.dataclass(frozen=True)
class Violation:
    """One place where a body breaks the schema."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<body>'}: {self.message}"


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Responses stream event type -> its schema's name (the branches of ResponseStreamEvent)."""
    schemas = document()["components"]["schemas"]
    by_type: dict[str, str] = {}
    for branch in schemas[RESPONSE_EVENT]["anyOf"]:
        name = branch["$ref"].rsplit("/", 1)[-1]
        for kind in schemas[name].get("properties", {}).get("type", {}).get("enum", []):
            by_type[kind] = name
    return by_type


def violations(body: Any, schema_name: str) -> list[Violation]:
    """Every violation of `schema_name` by `body`; for anyOf/oneOf the closest branch's errors.
    A Responses stream event is checked against the branch its `type` names (readable errors)."""
    if schema_name == RESPONSE_EVENT and isinstance(body, dict):
        branch = _event_schemas().get(body.get("type", ""))
        if branch is None:
            return [Violation("$.type", f"{body.get('type')!r} is no Responses stream event type")]
        schema_name = branch
    found: list[Violation] = []
    for error in _validator(schema_name).iter_errors(body):
        best = jsonschema.exceptions.best_match([error])
        found.append(Violation(best.json_path, best.message[:300]))
    return found


def check(body: Any, schema_name: str) -> None:
    """Raises AssertionError naming every violation of `schema_name` by `body`."""
    problems = violations(body, schema_name)
    assert not problems, f"{schema_name} violated:\n" + "\n".join(map(str, problems)) + f"\nbody: {body!r:.2000}"


def sse_data(lines: Iterable[str]) -> Iterator[Any]:
    """The JSON payloads of an SSE stream's `data:` lines, `[DONE]` left out."""
    for line in lines:
        if line.startswith("data:"):
            payload = line[len("data:") :].strip()
            if payload and payload != "[DONE]":
                yield json.loads(payload)


def check_stream(lines: Iterable[str], schema_name: str) -> list[Any]:
    """Checks every event of an SSE stream against `schema_name`; returns the events."""
    events = list(sse_data(lines))
    assert events, "the stream carried no events"
    for event in events:
        check(event, schema_name)
    return events
