"""The digests each source declares and the check every downloaded file passes."""

from __future__ import annotations

import base64
import hashlib
import pathlib
import types

import pytest

from llmserver_runtime.download import checksum, errors, fetch


def test_git_blob_sha1_matches_git_hash_object(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "hello"
    path.write_bytes(b"hello\n")
    assert checksum.compute(path, "git-sha1").hex == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object


def test_hub_digests_come_from_lfs_sha256_or_the_blob_id() -> None:
    sha256 = "A" * 64
    lfs = types.SimpleNamespace(lfs=types.SimpleNamespace(sha256=sha256), blob_id="b" * 40)
    plain = types.SimpleNamespace(lfs=None, blob_id="b" * 40)
    assert str(fetch._tree_digest(lfs)) == "sha256:" + "a" * 64
    assert str(fetch._tree_digest(plain)) == "git-sha1:" + "b" * 40
    assert fetch._tree_digest(types.SimpleNamespace(lfs=None, blob_id=None)) is None


@pytest.mark.parametrize(
    ("etag", "expected"),
    [('"' + "c" * 64 + '"', "sha256:" + "c" * 64), ('W/"' + "d" * 40 + '"', "git-sha1:" + "d" * 40),
     ('"not-a-digest"', None), (None, None)],
)  # fmt: skip
def test_hub_etags(etag: str | None, expected: str | None) -> None:
    found = checksum.of_hub_etag(etag)
    assert (str(found) if found else None) == expected


def test_s3_prefers_the_sha256_checksum_and_ignores_multipart_etags() -> None:
    encoded = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    md5 = hashlib.md5(b"x").hexdigest()  # noqa: S324
    assert str(checksum.of_s3(encoded, f'"{md5}"')) == "sha256:" + hashlib.sha256(b"x").hexdigest()
    assert str(checksum.of_s3(None, f'"{md5}"')) == "md5:" + md5
    assert checksum.of_s3(encoded + "-3", f'"{md5}-3"') is None  # composite checksum, multipart ETag


def test_a_mismatch_removes_the_file_and_names_both_digests(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"actual")
    expected = checksum.Digest("sha256", "0" * 64)
    with pytest.raises(errors.DownloadError) as failure:
        checksum.verify(path, "model.gguf", expected)
    actual = hashlib.sha256(b"actual").hexdigest()
    assert failure.value.message == (
        f"checksum mismatch for model.gguf: expected sha256:{'0' * 64}, got sha256:{actual} (the file was removed)"
    )
    assert not failure.value.transient and not path.exists()
    path.write_bytes(b"actual")
    assert checksum.verify(path, "model.gguf", checksum.Digest("sha256", actual.upper())).hex == actual
    assert path.exists()
