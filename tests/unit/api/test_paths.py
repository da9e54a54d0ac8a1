"""Spec fields that become filesystem paths (Hugging Face repo, revision and file; PVC path) refuse
`..`, absolute paths and hidden segments. The patterns are plain regular expressions, so pydantic,
the generated CRD schema and Go's RE2 (the API server's engine; re2 here) must give one verdict."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
import re2

from llmserver_api import llmserver, paths
from testkit import crd_validation

UNSAFE = [
    "..", ".", "../x", "a/../b", "a/..", "/etc/passwd", "/", ".hidden", "a/.git/config", "a//b", "a/", "~/x",
    "~", "a\\..\\b", "C:/x", "a/b\n", "-x", " a",
]  # fmt: skip
SAFE = ["model.gguf", "Q4_K_M/model-00001-of-00002.gguf", "a..b", "_x", "0eb6b1ed2d0c4306bc637d09ecef51e59d3dfe05"]

# (the field's wire path, how to put a value there)
FIELDS = {
    "spec.source.huggingFace.file": lambda v: {"huggingFace": {"repo": "org/model", "file": v}},
    "spec.source.huggingFace.revision": lambda v: {"huggingFace": {"repo": "org/model", "revision": v}},
    "spec.source.pvc.path": lambda v: {"pvc": {"claimName": "models", "path": v}},
}


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return crd_validation.load_crds()


def _verdicts(crds: dict[str, dict[str, Any]], source: dict[str, Any]) -> tuple[bool, bool]:
    manifest = {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer", "metadata": {"name": "m"},
                "spec": {"model": "m", "source": source}}  # fmt: skip
    try:
        llmserver.LLMServer.model_validate(manifest)
        pydantic_ok = True
    except pydantic.ValidationError:
        pydantic_ok = False
    return pydantic_ok, not crd_validation.api_server_problems(crds, manifest)


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("value", UNSAFE + SAFE)
def test_path_fields_refuse_what_leaves_their_folder(crds: dict[str, dict[str, Any]], field: str, value: str) -> None:
    expected = value in SAFE
    assert _verdicts(crds, FIELDS[field](value)) == (expected, expected)


@pytest.mark.parametrize("repo", ["org/..", "org/.hidden", "../x", "/x/y", "org/a/b", "org/-x", "org/~"])
def test_repo_names_refuse_path_tricks(crds: dict[str, dict[str, Any]], repo: str) -> None:
    assert _verdicts(crds, {"huggingFace": {"repo": repo}}) == (False, False)
    assert _verdicts(crds, {"huggingFace": {"repo": "Qwen/Qwen2.5-0.5B_x"}}) == (True, True)


@pytest.mark.parametrize("pattern", [paths.RELATIVE_PATH, paths.OPTIONAL_RELATIVE_PATH, paths.REPO_ID])
@pytest.mark.parametrize("value", UNSAFE + SAFE + ["", "org/model", "org/.x"])
def test_go_regexp_agrees_with_python(pattern: str, value: str) -> None:
    """Go's `$` is end of text; Python's also before a final newline, so the CRD copy must not differ."""
    python = crd_validation.to_json_schema({"type": "string", "pattern": pattern})["pattern"]
    import re

    assert (re2.search(pattern, value) is not None) == (re.search(python, value) is not None)


@pytest.mark.parametrize(
    "repo,revision,file",
    [("org/..", "main", None), ("org/m", "..", None), ("org/m", "main", "../x"), ("org/m", "main", "/etc/x"),
     ("org/m", ".git", None), ("org/m", "main", "a/.cache/x")],
)  # fmt: skip
def test_cache_paths_refuse_unsafe_input(repo: str, revision: str, file: str | None) -> None:
    """The CLIs (download-model, the downloader) pass repo, revision and file that no CRD checked."""
    with pytest.raises(ValueError, match="not a safe relative path"):
        paths.huggingface_model_path(repo, revision, file)


def test_cache_paths_of_safe_input() -> None:
    assert paths.huggingface_model_path("Org/M.x", "refs/pr/1", "q/m.gguf") == "hf/Org/M.x/refs_pr_1/q/m.gguf"
