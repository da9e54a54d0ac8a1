"""SOURCE strings of add-server (--model-path, --adapter): every form, and errors naming the flag."""

from __future__ import annotations

import pathlib

import pytest

from llmserver_cli.commands import source_arg

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("Org/Model", {"huggingFace": {"repo": "Org/Model"}}),
        ("hf://Org/Model", {"huggingFace": {"repo": "Org/Model"}}),
        ("Org/Model/sub/q4.gguf", {"huggingFace": {"repo": "Org/Model", "file": "sub/q4.gguf"}}),
        ("pvc:models", {"pvc": {"claimName": "models", "path": ""}}),
        ("pvc:models/llama/7b", {"pvc": {"claimName": "models", "path": "llama/7b"}}),
        ("s3://bucket/models/q.gguf", {"s3": {"bucket": "bucket", "key": "models/q.gguf"}}),
        ("s3://bucket/models/qwen/", {"s3": {"bucket": "bucket", "prefix": "models/qwen"}}),
        (f"https://mirror.example/q.gguf#sha256={SHA.upper()}", {"url": {"url": "https://mirror.example/q.gguf", "sha256": SHA}}),
    ],
)
def test_each_form_becomes_its_source(value: str, wire: dict[str, object]) -> None:
    assert source_arg.parse(value, "--model-path") == wire


def test_s3_options_go_into_the_s3_block_only() -> None:
    options = source_arg.S3Options(endpoint="http://minio:9000", region="eu-west-1", secret="s3-keys")
    assert source_arg.parse("s3://b/k", "--model-path", options) == {"s3": {
        "bucket": "b", "key": "k", "endpoint": "http://minio:9000", "region": "eu-west-1",
        "credentialsSecretRef": {"name": "s3-keys"},
    }}  # fmt: skip
    assert source_arg.parse("Org/Model", "--model-path", options) == {"huggingFace": {"repo": "Org/Model"}}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("justaname", "takes OWNER/NAME"),
        ("s3://bucket", "s3://BUCKET/KEY"),
        ("s3://bucket/", "s3://BUCKET/KEY"),
        ("https://mirror.example/q.gguf", "needs its checksum"),
        ("https://mirror.example/q.gguf#sha256=abc", "needs its checksum"),
        ("ftp://mirror.example/q.gguf#sha256=" + SHA, "only s3:// and http(s)://"),
        ("pvc:", "needs a claim name"),
        ("/models/q.gguf", "local files are served with --local"),
        ("~/models/q.gguf", "local files are served with --local"),
    ],
)
def test_other_strings_are_refused_naming_the_flag(value: str, said: str) -> None:
    with pytest.raises(source_arg.SourceError) as caught:
        source_arg.parse(value, "--model-path")
    assert str(caught.value).startswith("--model-path") and said in str(caught.value)


def test_a_local_file_is_its_folder_and_name(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "llama-2-7b.Q4_K_M.gguf"
    model.write_bytes(b"GGUF")
    assert source_arg.local(str(model), "--model-path") == {"pvc": {"claimName": str(tmp_path), "path": model.name}}
    assert source_arg.local(str(tmp_path), "--model-path") == {"pvc": {"claimName": str(tmp_path.parent), "path": tmp_path.name}}
    hidden = tmp_path / ".hidden.gguf"
    hidden.write_bytes(b"GGUF")
    assert source_arg.local(str(hidden), "--model-path") == {"pvc": {"claimName": str(hidden), "path": ""}}
    with pytest.raises(source_arg.SourceError, match="does not exist"):
        source_arg.local(str(tmp_path / "missing.gguf"), "--model-path")


def test_adapter_is_name_equals_source(tmp_path: pathlib.Path) -> None:
    assert source_arg.adapter("sql=Org/sql-lora", "--adapter", None, allow_local=False) == {
        "name": "sql", "source": {"huggingFace": {"repo": "Org/sql-lora"}}}  # fmt: skip
    lora = tmp_path / "lora.gguf"
    lora.write_bytes(b"GGUF")
    local = source_arg.adapter(f"mine={lora}", "--adapter", None, allow_local=True)
    assert local == {"name": "mine", "source": {"pvc": {"claimName": str(tmp_path), "path": "lora.gguf"}}}
    for bad in ("sql", "=Org/x", "sql="):
        with pytest.raises(source_arg.SourceError, match="--adapter takes NAME=SOURCE"):
            source_arg.adapter(bad, "--adapter", None, allow_local=False)
    with pytest.raises(source_arg.SourceError, match="--adapter mine .*--local"):
        source_arg.adapter(f"mine={lora}", "--adapter", None, allow_local=False)
