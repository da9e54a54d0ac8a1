"""Offline stand-in for the API server's validation of custom resources.

kube-apiserver validates a custom resource in steps that this module reproduces without a
cluster, so tests can check a manifest exactly as `kubectl apply` would be answered:
1. prune `null` values of non-nullable fields (none of ours is nullable), then apply the schema's
   defaults (`llmserver_api.schema.apply_defaults`);
2. validate against the CRD's openAPIV3Schema, translated to JSON Schema draft 4 (the dialect
   OpenAPI v3.0 schemas extend: boolean exclusiveMinimum/Maximum), with unknown fields refused as
   kubectl's strict field validation does, `x-kubernetes-list-type: set` as uniqueItems and Go's
   regexp `$` (end of text only) instead of Python's (also before a final newline);
3. evaluate every `x-kubernetes-validations` CEL rule with cel-python where its object is present.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import pathlib
import re
from typing import Any

import celpy
import jsonschema
import yaml

import llmserver_api.schema

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"
Schema = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One refusal, as the API server would report it: the field path and a message."""

    source: str  # "schema" or "cel"
    path: str
    message: str


def load_crds(directory: pathlib.Path = CRD_DIR) -> dict[str, dict[str, Any]]:
    """Kind → CRD object, read from the generated YAML files."""
    crds = {}
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def open_api_schema(crd: dict[str, Any]) -> Schema:
    """The openAPIV3Schema of the CRD's (single) stored version."""
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]


def field_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """`spec.resources.tolerations[0].effect` from ('spec', 'resources', 'tolerations', 0, 'effect')."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _go_pattern(pattern: str) -> str:
    """Go's `$` matches only at the end of the text; Python's also before a trailing newline."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + r"\Z"
    return pattern


def to_json_schema(node: Schema, *, root: bool = True) -> Schema:
    """Translates a structural OpenAPI v3 schema into JSON Schema draft 4, faithfully."""
    out: Schema = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(sub, root=False) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_json_schema(value, root=False)
        elif key == "pattern":
            out[key] = _go_pattern(value)
        elif key == "x-kubernetes-list-type" and value == "set":
            out["uniqueItems"] = True
        elif key.startswith("x-kubernetes-") or key == "default":
            continue  # CEL rules run separately; defaults were applied before validation
        else:
            out[key] = copy.deepcopy(value)
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if node.get("type") == "object" and not preserve and "additionalProperties" not in node:
        if "properties" in node:
            out["additionalProperties"] = False  # strict field validation: unknown fields refused
    if root:
        out["$schema"] = "http://json-schema.org/draft-04/schema#"
    return out


def prune_nulls(value: Any) -> Any:
    """Drops `null` object members, as the API server does for non-nullable fields."""
    if isinstance(value, dict):
        return {key: prune_nulls(sub) for key, sub in value.items() if sub is not None}
    if isinstance(value, list):
        return [prune_nulls(item) for item in value]
    return value


def _schema_problem(error: jsonschema.ValidationError) -> Problem:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        # "Additional properties are not allowed ('gpus' was unexpected)": name the first one.
        unexpected = re.findall(r"'([^']+)'", error.message.rsplit("(", 1)[-1])
        path = path + unexpected[:1]
    elif error.validator == "required":
        missing = re.match(r"'([^']+)' is a required property", error.message)
        if missing:
            path = path + [missing.group(1)]
    return Problem("schema", field_path(path), error.message)


def schema_problems(schema: Schema, manifest: dict[str, Any]) -> list[Problem]:
    """Schema (type, enum, range, pattern, unknown field) refusals of a pruned, defaulted manifest."""
    validator = jsonschema.Draft4Validator(to_json_schema(schema))
    return [_schema_problem(error) for error in validator.iter_errors(manifest)]


@functools.lru_cache(maxsize=256)
def _program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def evaluate(rule: str, value: Any) -> bool | str:
    """True/False, or the text of the evaluation error (the API server refuses those too)."""
    program = _program(rule)
    try:
        result = program.evaluate({"self": celpy.json_to_cel(value)})
    except celpy.CELEvalError as error:
        return f"CEL evaluation error: {error}"
    if isinstance(result, celpy.CELEvalError):
        return f"CEL evaluation error: {result}"
    return bool(result)


def cel_problems(schema: Schema, value: Any, path: tuple[str | int, ...] = ()) -> list[Problem]:
    """Evaluates every CEL rule on the (defaulted) object wherever its node is present."""
    problems: list[Problem] = []
    for validation in schema.get("x-kubernetes-validations", []):
        outcome = evaluate(validation["rule"], value)
        if outcome is not True:
            where = field_path(path) + validation.get("fieldPath", "")
            message = validation["message"] if outcome is False else str(outcome)
            problems.append(Problem("cel", where.lstrip("."), message))
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                problems.extend(cel_problems(sub, value[name], path + (name,)))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems.extend(cel_problems(schema["items"], item, path + (index,)))
    return problems


def prepare(schema: Schema, manifest: dict[str, Any]) -> dict[str, Any]:
    """The object the API server validates: nulls pruned, defaults applied."""
    return llmserver_api.schema.apply_defaults(schema, prune_nulls(manifest))


def api_server_problems(crds: dict[str, dict[str, Any]], manifest: dict[str, Any]) -> list[Problem]:
    """Everything the API server would refuse in `manifest` (empty when it would be accepted)."""
    schema = open_api_schema(crds[manifest["kind"]])
    prepared = prepare(schema, manifest)
    return schema_problems(schema, prepared) + cel_problems(schema, prepared)
