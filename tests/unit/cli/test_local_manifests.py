"""Local mode reads manifests strictly: every problem of every file, before anything starts."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from llmserver_cli.hosting import sources
from llmserver_cli.local import manifests, proxy


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
    apiVersion: v1
    kind: Namespace
    metadata: {name: ml}
    ---
    apiVersion: serving.llmserver.dev/v1alpha1
    kind: LLMServer
    metadata: {name: tiny}
    spec:
      model: tiny
      backend: llama-cpp
      source: {pvc: {claimName: ./models, path: tiny.gguf}}
    ---
    apiVersion: serving.llmserver.dev/v1alpha1
    kind: LLMServer
    metadata: {name: gpt}
    spec:
      model: gpt-4o-mini
      mode: Proxy
      proxy: {url: "http://127.0.0.1:9/v1", apiKeySecretRef: {name: provider, key: provider-key}}
"""


def test_valid_file_loads_and_pvc_resolves_relative_to_the_manifest(tmp_path: pathlib.Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").write_bytes(b"GGUF")
    loaded = manifests.load([write(tmp_path / "servers.yaml", GOOD)])
    assert [m.name for m in loaded] == ["tiny", "gpt"]
    assert sources.model_path(loaded[0].server, loaded[0].origin, tmp_path / "cache") == tmp_path / "models" / "tiny.gguf"


def test_a_folder_is_read_file_by_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").write_bytes(b"GGUF")
    write(tmp_path / "a.yaml", GOOD)
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert len(manifests.load([tmp_path])) == 2


def test_every_problem_names_file_and_field(tmp_path: pathlib.Path) -> None:
    bad = write(tmp_path / "bad.yaml", """\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: p}
        spec: {model: p, mode: Proxy}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: q}
        spec:
          model: q
          backend: transformers
          transformers: {loadIn4bit: true, loadIn8bit: true}
          source: {huggingFace: {repo: a/b}}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: r}
        spec: {model: r, source: {pvc: {claimName: ./nowhere, path: x.gguf}}}
    """)  # fmt: skip
    other = write(tmp_path / "typo.yaml", """\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: s}
        spec: {model: s, replcas: 2, source: {huggingFace: {repo: a/b}}}
    """)
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load([bad, other, tmp_path / "missing.yaml"])
    problems = caught.value.problems
    text = "\n".join(problems)
    assert f"{bad} (document 1): spec: spec.proxy" in text
    assert f"{bad} (document 2)" in text and "loadIn4bit and spec.transformers.loadIn8bit" in text
    assert f"{bad} (document 3): spec.source.pvc:" in text and "nowhere" in text
    assert f"{other} (document 1): spec.replcas" in text
    assert f"{tmp_path / 'missing.yaml'}: cannot read" in text
    assert len(problems) == 5


def test_duplicate_names_and_models_are_refused(tmp_path: pathlib.Path) -> None:
    doc = """\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: %s}
        spec: {model: same, source: {huggingFace: {repo: a/b}}}
    """
    first = write(tmp_path / "one.yaml", doc % "one")
    second = write(tmp_path / "two.yaml", doc % "one")
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load([first, second])
    text = "\n".join(caught.value.problems)
    assert "metadata.name: 'one' is also defined" in text and "spec.model: 'same' is also served" in text


def test_wrong_kind_and_yaml_errors(tmp_path: pathlib.Path) -> None:
    kind = write(tmp_path / "kind.yaml", "apiVersion: serving.llmserver.dev/v1alpha1\nkind: LLMServr\nspec: {}\n")
    broken = write(tmp_path / "broken.yaml", "spec: [unclosed\n")
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.load([kind, broken])
    text = "\n".join(caught.value.problems)
    assert "kind: expected LLMServer, got 'LLMServr'" in text and f"{broken}: not valid YAML" in text


def test_api_key_env_is_named_after_the_secret_key() -> None:
    assert proxy.api_key_env("OPENAI_API_KEY") == "OPENAI_API_KEY"
    assert proxy.api_key_env("provider-key") == "PROVIDER_KEY"
    assert proxy.api_key_env("1st.key") == "_1ST_KEY"
