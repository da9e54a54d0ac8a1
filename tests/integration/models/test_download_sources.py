"""`llmserver-runtime download` for S3 and URL sources, and the checksum every file must pass:
S3 against moto's server mode, URLs against a local http server (testkit.file_server), a Hub
whose file does not match its advertised digest against testkit.hub_server."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from llmserver_api import paths
from testkit import file_server, hub_server

pytestmark = pytest.mark.timeout(180)

BUCKET = "models"
BIG = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # 6 MiB: several 1 MiB chunks
SMALL = b"GGUF" + bytes(range(200)) * 50
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-key"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_download(cache: pathlib.Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HF_"))}
    clean.update(env or {})
    argv = [sys.executable, "-m", "llmserver_runtime", "download", "--cache-dir", str(cache),
            "--retry-delay", "0", "--retries", "3", "--progress-interval", "0.05", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=150, env=clean, check=False)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def markers(cache: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in cache.rglob("*.llmserver-download.json")]


# --- S3 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_boto_credentials())
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="gguf/tiny.gguf", Body=SMALL)  # single part: MD5 ETag
    client.put_object(Bucket=BUCKET, Key="hf/tiny/config.json", Body=b'{"a": 1}', ChecksumAlgorithm="SHA256")
    client.put_object(Bucket=BUCKET, Key="hf/tiny/weights/model.bin", Body=BIG)
    client.put_object(Bucket=BUCKET, Key="hf/tiny/.hidden", Body=b"not a model file")
    yield endpoint
    server.stop()


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}


def test_s3_key_lands_in_the_cache_verified_with_progress(s3_endpoint: str, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    result = run_download(cache, "--s3", f"s3://{BUCKET}/gguf/tiny.gguf", "--s3-endpoint", s3_endpoint,
                          "--s3-region", "us-east-1", env=CREDENTIALS)  # fmt: skip
    assert result.returncode == 0, result.stderr
    served = cache / paths.s3_path(BUCKET, "gguf/tiny.gguf", s3_endpoint)
    assert last_line(result) == str(served.resolve())
    assert served.read_bytes() == SMALL
    assert f"[bytes={len(SMALL)}/{len(SMALL)}]" in result.stdout
    (marker,) = markers(cache)
    assert marker["digests"] == {"tiny.gguf": "md5:" + hashlib.md5(SMALL).hexdigest()}  # noqa: S324
    again = run_download(cache, "--s3", f"s3://{BUCKET}/gguf/tiny.gguf", "--s3-endpoint", "http://127.0.0.1:1")
    assert again.returncode != 0  # another endpoint is another cache entry (and unreachable)
    rerun = run_download(cache, "--s3", f"s3://{BUCKET}/gguf/tiny.gguf", "--s3-endpoint", s3_endpoint, env=CREDENTIALS)
    assert rerun.returncode == 0 and "already complete" in rerun.stdout


def test_s3_prefix_brings_every_object_under_it(s3_endpoint: str, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    result = run_download(cache, "--s3", f"s3://{BUCKET}/hf/tiny/", "--s3-endpoint", s3_endpoint, env=CREDENTIALS)
    assert result.returncode == 0, result.stderr
    served = cache / paths.s3_path(BUCKET, "hf/tiny", s3_endpoint)
    assert last_line(result) == str(served.resolve())
    assert (served / "config.json").read_bytes() == b'{"a": 1}'
    assert (served / "weights" / "model.bin").read_bytes() == BIG
    assert not (served / ".hidden").exists()
    assert "2/2 files" in result.stdout
    (marker,) = markers(cache)
    assert marker["digests"]["config.json"] == "sha256:" + _sha256(b'{"a": 1}')  # S3's ChecksumSHA256
    assert marker["digests"]["weights/model.bin"] == "md5:" + hashlib.md5(BIG).hexdigest()  # noqa: S324


class _Cut:
    """Wraps an S3 source so the first body breaks after `limit` bytes (a killed pod)."""

    def __init__(self, source: Any, limit: int) -> None:
        self._source, self._limit = source, limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def open_from(self, file: Any, offset: int) -> tuple[int, Iterator[bytes]]:
        start, chunks = self._source.open_from(file, offset)

        def cut() -> Iterator[bytes]:
            sent = 0
            for chunk in chunks:
                yield chunk[: self._limit - sent]
                sent += len(chunk)
                if sent >= self._limit:
                    raise ConnectionResetError("connection reset by peer")

        return start, cut()


def test_s3_restart_fetches_only_the_rest(s3_endpoint: str, tmp_path: pathlib.Path, monkeypatch) -> None:
    from llmserver_runtime.download import errors, run, s3

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    cache = tmp_path / "models"
    first = s3.S3Source(BUCKET, "hf/tiny/weights/model.bin", False, cache, endpoint=s3_endpoint, region="us-east-1")
    with pytest.raises(errors.DownloadError, match="gave up after 1 attempts"):
        run.run_direct(_Cut(first, 2 * 1024 * 1024), emit=lambda line: None, retry=run.Retry(attempts=1, delay=0))
    part = first.served_path.with_name("model.bin.part")
    assert part.stat().st_size == 2 * 1024 * 1024 and not first.served_path.exists()
    assert not first.marker.exists()

    second = s3.S3Source(BUCKET, "hf/tiny/weights/model.bin", False, cache, endpoint=s3_endpoint, region="us-east-1")
    ranges: list[str | None] = []
    fetched: list[int] = []
    client = second.client()
    client.meta.events.register("before-send.s3.GetObject", lambda request, **_: ranges.append(request.headers.get("Range")))
    client.meta.events.register("after-call.s3.GetObject", lambda parsed, **_: fetched.append(parsed["ContentLength"]))
    lines: list[str] = []
    reports: list[Any] = []
    path = run.run_direct(second, emit=lines.append, report=reports.append, interval=0.01)
    assert path.read_bytes() == BIG
    assert [bytes(r or b"").decode() for r in ranges] == [f"bytes={2 * 1024 * 1024}-"]
    assert fetched == [len(BIG) - 2 * 1024 * 1024]  # only the rest crossed the network
    assert reports[-1].bytes_done == reports[-1].bytes_total == len(BIG) and reports[-1].message == "complete"
    assert any(line.startswith("progress:") for line in lines)
    assert not part.exists() and second.marker.exists()


def test_s3_corrupt_partial_is_refused_and_removed(s3_endpoint: str, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    served = cache / paths.s3_path(BUCKET, "gguf/tiny.gguf", s3_endpoint)
    served.parent.mkdir(parents=True)
    served.with_name("tiny.gguf.part").write_bytes(b"X" * 100)  # a resumed part whose start is wrong
    result = run_download(cache, "--s3", f"s3://{BUCKET}/gguf/tiny.gguf", "--s3-endpoint", s3_endpoint, env=CREDENTIALS)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    expected = hashlib.md5(SMALL).hexdigest()  # noqa: S324
    assert line.startswith("download failed: checksum mismatch for tiny.gguf: expected md5:" + expected + ", got md5:")
    assert not served.exists() and not served.with_name("tiny.gguf.part").exists() and markers(cache) == []


def test_s3_missing_object_is_one_clear_line(s3_endpoint: str, tmp_path: pathlib.Path) -> None:
    result = run_download(tmp_path, "--s3", f"s3://{BUCKET}/nope.gguf", "--s3-endpoint", s3_endpoint, env=CREDENTIALS)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"download failed: object s3://{BUCKET}/nope.gguf does not exist"
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in result.stdout + result.stderr


# --- URL --------------------------------------------------------------------------------------


@pytest.fixture
def files() -> Iterator[file_server.FileServer]:
    with file_server.FileServer({"tiny.gguf": SMALL, "big.bin": BIG}) as server:
        yield server


def test_url_file_is_verified_and_marked(files: file_server.FileServer, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    url = f"{files.url}/tiny.gguf"
    result = run_download(cache, "--url", f"{url}#sha256={_sha256(SMALL).upper()}")
    assert result.returncode == 0, result.stderr
    served = cache / paths.url_path(url, _sha256(SMALL))
    assert last_line(result) == str(served.resolve()) and served.read_bytes() == SMALL
    assert markers(cache)[0]["digests"] == {"tiny.gguf": "sha256:" + _sha256(SMALL)}


def test_url_interrupted_body_resumes_with_a_range(files: file_server.FileServer, tmp_path: pathlib.Path) -> None:
    files.interrupt["big.bin"] = 1
    result = run_download(tmp_path, "--url", f"{files.url}/big.bin", "--sha256", _sha256(BIG))
    assert result.returncode == 0, result.stderr
    assert pathlib.Path(last_line(result)).read_bytes() == BIG
    gets = files.gets("big.bin")
    assert [g.range for g in gets] == [None, f"bytes={len(BIG) // 2}-"]
    assert "attempt 1/3 failed" in result.stdout


def test_url_wrong_sha256_is_refused_and_nothing_marked(files: file_server.FileServer, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    wrong = "0" * 64
    result = run_download(cache, "--url", f"{files.url}/tiny.gguf", "--sha256", wrong)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"download failed: checksum mismatch for tiny.gguf: expected sha256:{wrong}, got sha256:{_sha256(SMALL)} "
        "(the file was removed)"
    )
    assert len(files.gets("tiny.gguf")) == 1  # a mismatch is not retried
    assert [p for p in cache.rglob("*") if p.is_file()] == []  # no file, no part, no marker


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "{base}/nope.gguf", "--sha256", "a" * 64], "answered HTTP 404"),
        (["--url", "{base}/tiny.gguf"], "--url needs --sha256"),
        (["--url", "ftp://host/tiny.gguf", "--sha256", "a" * 64], "only http and https"),
    ],
)
def test_url_errors(files: file_server.FileServer, tmp_path: pathlib.Path, args: list[str], message: str) -> None:
    result = run_download(tmp_path, *[a.format(base=files.url) for a in args])
    assert result.returncode != 0
    assert message in result.stderr


# --- the Hub ----------------------------------------------------------------------------------


def test_hub_file_not_matching_its_digest_is_refused(tmp_path: pathlib.Path) -> None:
    config = b'{"model_type": "llama"}'
    repo = hub_server.HubRepo({"config.json": config, "README.md": b"# tiny\n"})
    with hub_server.HubServer({"org/tiny": repo}) as hub:
        hub.corrupt["config.json"] = config.replace(b"llama", b"LLAMA")  # same size, other bytes
        cache = tmp_path / "models"
        result = run_download(cache, "--repo", "org/tiny", env={"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 1
    oid = hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()  # noqa: S324
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"download failed: checksum mismatch for config.json: expected git-sha1:{oid}, got git-sha1:")
    target = cache / paths.huggingface_dir("org/tiny", "main")
    assert not (target / "config.json").exists() and markers(cache) == []


def test_hub_download_records_verified_digests(tmp_path: pathlib.Path) -> None:
    repo = hub_server.HubRepo({"config.json": b"{}", "README.md": b"# tiny\n"})
    with hub_server.HubServer({"org/tiny": repo}) as hub:
        result = run_download(tmp_path, "--repo", "org/tiny", env={"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr
    (marker,) = markers(tmp_path)
    assert marker["digests"]["config.json"] == "git-sha1:" + hashlib.sha1(b"blob 2\0{}").hexdigest()  # noqa: S324

