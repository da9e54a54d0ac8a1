"""`llmserver-runtime serve --backend auto`: each tiny model format served by the engine detection
picks, driven with the official openai SDK; an undecidable directory exits non-zero with the reason."""

from __future__ import annotations

import json
import pathlib
import shutil

import openai
import pytest
from testkit import models, runtime_server

pytestmark = pytest.mark.timeout(300)


def _chose(server: runtime_server.RuntimeServer) -> str:
    """The `--backend auto chose X: why` line from the log."""
    line = next((line for line in server.output().splitlines() if "--backend auto chose" in line), "")
    assert line, server.output()
    return line


def test_gguf_file_is_served_by_llama_cpp(tmp_path: pathlib.Path) -> None:
    with runtime_server.start(tmp_path, "auto", models.tiny_model_path("gguf"), "tiny") as server:
        client = server.client()
        reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=4, temperature=0)
        assert reply.choices[0].message.content is not None
        assert reply.usage is not None and reply.usage.completion_tokens >= 1
        assert "chose llama-cpp" in _chose(server)


def test_gguf_in_a_directory_loads_the_one_gguf(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(models.tiny_model_path("gguf"), folder / "tiny-q8.gguf")
    (folder / "README.md").write_text("a GGUF repo snapshot\n")
    with runtime_server.start(tmp_path, "auto", str(folder), "tiny") as server:
        reply = server.client().completions.create(model="tiny", prompt="hello", max_tokens=3, temperature=0)
        assert reply.choices[0].text is not None
        assert "chose llama-cpp" in _chose(server) and "tiny-q8.gguf" in _chose(server)


def test_hf_causal_is_served_by_transformers_on_cpu(tmp_path: pathlib.Path) -> None:
    with runtime_server.start(tmp_path, "auto", models.tiny_model_path("hf-causal"), "tiny") as server:
        client = server.client()
        reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=4, temperature=0)
        assert reply.usage is not None and reply.usage.completion_tokens >= 1
        assert "chose transformers" in _chose(server)
        with pytest.raises(openai.APIStatusError) as refused:  # detection said text only
            client.embeddings.create(model="tiny", input="x")
        assert 400 <= refused.value.status_code < 500


def test_sentence_transformers_is_served_as_embeddings(tmp_path: pathlib.Path) -> None:
    with runtime_server.start(tmp_path, "auto", models.minilm_path(), "minilm") as server:
        client = server.client()
        reply = client.embeddings.create(model="minilm", input=["a cat", "a dog"])
        assert [len(item.embedding) for item in reply.data] == [384, 384]
        assert "chose transformers" in _chose(server) and "sentence-transformers" in _chose(server)
        with pytest.raises(openai.APIStatusError) as refused:  # an embedding model does not generate
            client.chat.completions.create(model="minilm", messages=[{"role": "user", "content": "hi"}])
        assert 400 <= refused.value.status_code < 500


def test_cross_encoder_is_served_as_rerank(tmp_path: pathlib.Path) -> None:
    with runtime_server.start(tmp_path, "auto", models.tiny_model_path("hf-rerank"), "rank") as server:
        client = server.client()
        reply = client.post("/rerank", body={"model": "rank", "query": "cats", "documents": ["a", "b", "c"]},
                            cast_to=object)
        assert isinstance(reply, dict)
        assert sorted(item["index"] for item in reply["results"]) == [0, 1, 2]
        assert "chose transformers" in _chose(server) and "cross-encoder" in _chose(server)


def test_explicit_capabilities_are_kept(tmp_path: pathlib.Path) -> None:
    """--capabilities given: auto picks the engine only; the listed capabilities are what is served."""
    with runtime_server.start(tmp_path, "auto", models.tiny_model_path("gguf"), "tiny",
                              "--capabilities", "TextGeneration") as server:
        client = server.client()
        client.completions.create(model="tiny", prompt="a", max_tokens=2)
        with pytest.raises(openai.APIStatusError):  # the GGUF could embed, but only text was asked for
            client.embeddings.create(model="tiny", input="x")


def test_undecidable_directory_exits_with_the_reason(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "mystery"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    (folder / "notes.txt").write_text("weights went missing\n")
    server = runtime_server.launch(tmp_path, "auto", str(folder), "mystery")
    try:
        code = server.proc.wait(timeout=60)
    finally:
        server.stop()
    assert code != 0
    output = server.output()
    assert "--backend auto cannot serve" in output and "cannot decide" in output, output
    assert "Uvicorn running" not in output


def test_missing_path_exits_non_zero(tmp_path: pathlib.Path) -> None:
    server = runtime_server.launch(tmp_path, "auto", str(tmp_path / "nothing-here"), "gone")
    try:
        code = server.proc.wait(timeout=60)
    finally:
        server.stop()
    assert code != 0 and "no model file or directory" in server.output(), server.output()
