"""Every example manifest under examples/ is judged three ways, and the three must agree:
the pydantic models, the generated openAPIV3Schema (JSON-schema validation with strict field
validation) and the CEL rules (evaluated offline after defaulting).

An invalid example states on its first lines the field its error must name and why it is
invalid (`# expect-field: spec.proxy`, `# reason: ...`); each is invalid for its own reason.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pydantic
import pytest
import yaml

import llmserver_api
from testkit import crd_validation

EXAMPLES = crd_validation.REPO_ROOT / "examples"
VALID = sorted((EXAMPLES / "valid").glob("*.yaml"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))
MODELS: dict[str, type[pydantic.BaseModel]] = {
    "LLMServer": llmserver_api.LLMServer,
    "AppleNode": llmserver_api.AppleNode,
}
FIELD_TOKEN = re.compile(r"\b(?:spec|metadata|status)(?:\.[A-Za-z0-9]+|\[\d+\])+")


def _header(path: pathlib.Path, key: str) -> str | None:
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        match = re.match(rf"#\s*{key}:\s*(.+?)\s*$", line)
        if match:
            return match.group(1)
    return None


def _load(path: pathlib.Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _names_in(path: str, message: str) -> set[str]:
    """The fields an error names: where it points, plus any field path its message spells out."""
    return {path, *FIELD_TOKEN.findall(message)}


def _pydantic_names(error: pydantic.ValidationError) -> set[str]:
    names: set[str] = set()
    for detail in error.errors():
        names |= _names_in(crd_validation.field_path(detail["loc"]), detail["msg"])
    return names


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return crd_validation.load_crds()


def test_enough_examples_and_distinct_reasons() -> None:
    llmservers = [path for path in INVALID if _load(path)["kind"] == "LLMServer"]
    assert len([p for p in VALID if _load(p)["kind"] == "LLMServer"]) >= 15
    assert len(llmservers) >= 30
    reasons = [_header(path, "reason") for path in INVALID]
    assert None not in reasons, "every invalid example needs a '# reason:' line"
    assert len(set(reasons)) == len(reasons), "two invalid examples give the same reason"
    assert all(_header(path, "expect-field") for path in INVALID), "every invalid example needs '# expect-field:'"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_example_accepted_three_ways(path: pathlib.Path, crds: dict[str, dict[str, Any]]) -> None:
    manifest = _load(path)
    model = MODELS[manifest["kind"]].model_validate(manifest)
    assert crd_validation.api_server_problems(crds, manifest) == []
    # What pydantic writes back (defaults filled in) is accepted by the API server too ...
    assert crd_validation.api_server_problems(crds, model.to_wire()) == []
    # ... and the CRD's defaults mean what pydantic's defaults mean.
    schema = crd_validation.open_api_schema(crds[manifest["kind"]])
    defaulted = crd_validation.prepare(schema, manifest)
    assert MODELS[manifest["kind"]].model_validate(defaulted) == model


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_example_refused_three_ways(path: pathlib.Path, crds: dict[str, dict[str, Any]]) -> None:
    manifest = _load(path)
    expected = _header(path, "expect-field")
    with pytest.raises(pydantic.ValidationError) as refused:
        MODELS[manifest["kind"]].model_validate(manifest)
    assert expected in _pydantic_names(refused.value), f"pydantic's error does not name {expected}: {refused.value}"

    problems = crd_validation.api_server_problems(crds, manifest)
    assert problems, "pydantic refuses this manifest but the CRD schema and CEL rules accept it"
    named = set().union(*(_names_in(problem.path, problem.message) for problem in problems))
    assert expected in named, f"the API server's errors do not name {expected}: {problems}"


def test_refusals_of_schema_and_cel_are_distinguishable(crds: dict[str, dict[str, Any]]) -> None:
    """Cross-field examples are refused by CEL, type/range examples by the schema: both paths work."""
    cel = _load(EXAMPLES / "invalid" / "proxy-without-proxy-block.yaml")
    schema = _load(EXAMPLES / "invalid" / "gpu-memory-utilization-zero.yaml")
    assert {p.source for p in crd_validation.api_server_problems(crds, cel)} == {"cel"}
    assert {p.source for p in crd_validation.api_server_problems(crds, schema)} == {"schema"}
