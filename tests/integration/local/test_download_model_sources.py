"""`llmserver download-model` for s3:// and https://...#sha256= sources: the path it fetched is the
last line of stdout, a wrong checksum is refused, and `list-loaded --details` shows what the
cache's markers recorded as verified."""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Iterator

import pytest

from llmserver_api import paths
from testkit import file_server, local_up, runtime_server

pytestmark = pytest.mark.timeout(180)

CONTENT = b"GGUF" + bytes(range(256)) * 64
SHA = hashlib.sha256(CONTENT).hexdigest()
KEYS = {"AWS_ACCESS_KEY_ID": "testing-id", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


@pytest.fixture
def files() -> Iterator[file_server.FileServer]:
    with file_server.FileServer({"tiny.gguf": CONTENT}) as server:
        yield server


def test_url_source_prints_its_path_and_is_listed_with_its_digest(files: file_server.FileServer, tmp_path) -> None:
    cache = tmp_path / "models"
    url = f"{files.url}/tiny.gguf"
    result = local_up.llmserver("download-model", f"{url}#sha256={SHA}", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    served = cache / paths.url_path(url, SHA)
    assert result.stdout.strip().splitlines()[-1] == str(served)
    assert served.read_bytes() == CONTENT
    listed = local_up.llmserver("list-loaded", "--details", "--cache-dir", str(cache), "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [{"path": str(served), "source": url, "files": 1, "bytes": len(CONTENT),
                                          "digests": {"tiny.gguf": f"sha256:{SHA}"}}]  # fmt: skip
    table = local_up.llmserver("list-loaded", "--details", "--cache-dir", str(cache))
    assert f"sha256:{SHA}" in table.stdout


def test_wrong_checksum_is_refused(files: file_server.FileServer, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    result = local_up.llmserver("download-model", f"{files.url}/tiny.gguf#sha256={'0' * 64}", "--cache-dir", str(cache))
    assert result.returncode == 1
    assert "download failed: checksum mismatch for tiny.gguf" in result.stderr
    listed = local_up.llmserver("list-loaded", "--details", "--cache-dir", str(cache), "-o", "json")
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize(
    ("source", "message"),
    [("https://h.example/tiny.gguf", "needs its checksum"), ("ftp://h.example/x#sha256=" + "a" * 64, "only http(s)"),
     ("s3://bucket-only", "s3://BUCKET/KEY")],
)  # fmt: skip
def test_bad_sources_are_usage_errors(source: str, message: str, tmp_path: pathlib.Path) -> None:
    result = local_up.llmserver("download-model", source, "--cache-dir", str(tmp_path))
    assert result.returncode == 2 and message in result.stderr


def test_s3_key_and_prefix(tmp_path: pathlib.Path) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="y")  # fmt: skip
        client.create_bucket(Bucket="models")
        client.put_object(Bucket="models", Key="qwen/tiny.gguf", Body=CONTENT)
        client.put_object(Bucket="models", Key="qwen/config.json", Body=b"{}")
        cache = tmp_path / "models"
        env = runtime_server.env(**KEYS)
        one = local_up.llmserver("download-model", "s3://models/qwen/tiny.gguf", "--endpoint", endpoint,
                                 "--cache-dir", str(cache), env=env)  # fmt: skip
        assert one.returncode == 0, one.stderr
        assert one.stdout.strip().splitlines()[-1] == str(cache / paths.s3_path("models", "qwen/tiny.gguf", endpoint))
        every = local_up.llmserver("download-model", "s3://models/qwen/", "--endpoint", endpoint,
                                   "--cache-dir", str(cache), env=env)  # fmt: skip
        assert every.returncode == 0, every.stderr
        folder = pathlib.Path(every.stdout.strip().splitlines()[-1])
        assert folder == cache / paths.s3_path("models", "qwen", endpoint)
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["config.json", "tiny.gguf"]
        listed = json.loads(local_up.llmserver("list-loaded", "--details", "--cache-dir", str(cache), "-o", "json").stdout)
        assert [entry["source"] for entry in listed] == [f"s3://models/qwen/ at {endpoint}",
                                                         f"s3://models/qwen/tiny.gguf at {endpoint}"]  # fmt: skip
        md5 = hashlib.md5(CONTENT).hexdigest()  # noqa: S324
        assert listed[1]["digests"] == {"tiny.gguf": f"md5:{md5}"}
    finally:
        server.stop()


def test_up_serves_a_url_source_and_fails_a_wrong_checksum(tmp_path: pathlib.Path) -> None:
    import textwrap

    from testkit import models

    gguf = pathlib.Path(models.tiny_model_path("gguf"))
    content = gguf.read_bytes()
    good = hashlib.sha256(content).hexdigest()
    with file_server.FileServer({"tiny.gguf": content}) as mirror:
        servers = tmp_path / "url.yaml"
        servers.write_text(textwrap.dedent(f"""\
            apiVersion: serving.llmserver.dev/v1alpha1
            kind: LLMServer
            metadata: {{name: mirrored}}
            spec:
              model: mirrored
              backend: llama-cpp
              source: {{url: {{url: "{mirror.url}/tiny.gguf", sha256: "{good}"}}}}
            ---
            apiVersion: serving.llmserver.dev/v1alpha1
            kind: LLMServer
            metadata: {{name: tampered}}
            spec:
              model: tampered
              backend: llama-cpp
              source: {{url: {{url: "{mirror.url}/tiny.gguf", sha256: "{"0" * 64}"}}}}
        """))
        with local_up.Up(tmp_path, "-f", str(servers)) as up:
            up.wait_phase("mirrored", "Ready")
            failed = up.wait_phase("tampered", "Failed")
            assert failed["message"].startswith("download failed: checksum mismatch for tiny.gguf")
            up.wait_routed("mirrored")
            reply = up.client().chat.completions.create(model="mirrored", messages=[{"role": "user", "content": "Hi"}],
                                                        max_tokens=4)  # fmt: skip
            assert reply.usage is not None and reply.usage.completion_tokens > 0
            code, _ = up.interrupt()
            assert code == 0
    assert (tmp_path / "cache" / paths.url_path(f"{mirror.url}/tiny.gguf", good)).read_bytes() == content
