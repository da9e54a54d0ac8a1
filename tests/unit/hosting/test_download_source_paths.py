"""Local mode and the Mac agent download s3 and url sources with the operator's own flags and serve
them from the cache path the downloader writes (llmserver_api.paths)."""

from __future__ import annotations

import pathlib
from typing import Any

import llmserver_api
import pytest
from llmserver_api import paths

from llmserver_cli.hosting import argv, sources

SHA = "cd" * 32


def server(source: dict[str, Any]) -> llmserver_api.LLMServer:
    spec = {"model": "m", "backend": "llama-cpp", "source": source}
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": "m", "namespace": "default"}, "spec": spec})


def test_s3_source_is_downloaded_and_served_from_its_cache_path(tmp_path: pathlib.Path) -> None:
    s = server({"s3": {"bucket": "models", "prefix": "qwen", "region": "eu-west-1"}})
    assert argv.download("/py", s, tmp_path) == [
        "/py", "-m", "llmserver_runtime", "download", "--s3", "s3://models/qwen/", "--s3-region", "eu-west-1",
        "--cache-dir", str(tmp_path),
    ]  # fmt: skip
    assert sources.model_path(s, tmp_path / "servers.yaml", tmp_path) == tmp_path / "s3" / "models" / "qwen"


def test_url_source_is_downloaded_and_served_from_its_cache_path(tmp_path: pathlib.Path) -> None:
    s = server({"url": {"url": "https://mirror.example/q.gguf", "sha256": SHA}})
    command = argv.download("/py", s, tmp_path)
    assert command[4:8] == ["--url", "https://mirror.example/q.gguf", "--sha256", SHA]
    served = sources.model_path(s, tmp_path / "servers.yaml", tmp_path)
    assert served == tmp_path / paths.url_path("https://mirror.example/q.gguf", SHA)
    assert served.relative_to(tmp_path).parts == ("url", "mirror.example", SHA, "q.gguf")


def test_pvc_source_is_not_downloaded(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="only a source.huggingFace, s3 or url"):
        argv.download("/py", server({"pvc": {"claimName": "c"}}), tmp_path)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: paths.s3_path("models", "../etc"), "not a safe relative path"),
        (lambda: paths.s3_path("Bad_Bucket", "k"), "not a safe relative path"),
        (lambda: paths.url_path("file:///etc/passwd", SHA), "not a safe relative path"),
        (lambda: paths.url_path("https://h/x", "abc"), "not a safe relative path"),
    ],
)
def test_cache_paths_refuse_what_could_leave_the_cache(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_url_path_keeps_only_a_safe_file_name() -> None:
    assert paths.url_path("https://h.example:8443/a/.hidden?x=1#f", SHA) == f"url/h.example_8443/{SHA}/hidden"
    assert paths.s3_path("models", "a/b/", "http://minio:9000") == "s3-minio_9000/models/a/b"
