"""Digests a source declares for its files, and the check every downloaded file passes.

Hub files come with a SHA-256 (LFS) or their git blob SHA-1; S3 objects with a SHA-256 checksum or,
for a single-part upload, an MD5 ETag; URL sources with the SHA-256 the spec declares. A file that
does not match is deleted and the download fails, so nothing unverified is ever marked complete.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import pathlib
import re

from llmserver_runtime.download import errors

ALGORITHMS = ("sha256", "md5", "git-sha1")
_CHUNK = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Digest:
    """`algorithm:hex`, as stored in the cache marker."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, _, value = text.partition(":")
        if algorithm not in ALGORITHMS or not re.fullmatch(r"[0-9a-f]+", value):
            raise ValueError(f"not a digest: {text!r}")
        return cls(algorithm, value)


class ChecksumMismatch(errors.DownloadError):
    """A downloaded file whose content is not what its source declares (never retried)."""

    def __init__(self, name: str, expected: Digest, actual: Digest) -> None:
        super().__init__(
            f"checksum mismatch for {name}: expected {expected}, got {actual} (the file was removed)",
            transient=False,
        )


def of_hub_etag(etag: str | None) -> Digest | None:
    """A Hub ETag: 64 hex is the LFS SHA-256, 40 hex the git blob SHA-1; anything else: unknown."""
    value = (etag or "").strip().strip('"').removeprefix("W/").strip('"').lower()
    if re.fullmatch(r"[0-9a-f]{64}", value):
        return Digest("sha256", value)
    if re.fullmatch(r"[0-9a-f]{40}", value):
        return Digest("git-sha1", value)
    return None


def of_s3(checksum_sha256: str | None, etag: str | None) -> Digest | None:
    """S3's full-object ChecksumSHA256 (base64) when present, else an MD5 ETag (single-part upload;
    a multipart ETag `<hex>-<parts>` is no digest of the content)."""
    if checksum_sha256 and "-" not in checksum_sha256:
        try:
            return Digest("sha256", base64.b64decode(checksum_sha256, validate=True).hex())
        except (binascii.Error, ValueError):
            pass
    value = (etag or "").strip('"').lower()
    if re.fullmatch(r"[0-9a-f]{32}", value):
        return Digest("md5", value)
    return None


def compute(path: pathlib.Path, algorithm: str) -> Digest:
    """The digest of a file on disk (read in chunks)."""
    if algorithm == "git-sha1":
        hasher = hashlib.sha1(b"blob %d\0" % path.stat().st_size)  # noqa: S324 - git's object id, not security
    else:
        hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return Digest(algorithm, hasher.hexdigest())


def verify(path: pathlib.Path, name: str, expected: Digest) -> Digest:
    """The file's digest when it matches `expected`; otherwise deletes it and raises ChecksumMismatch."""
    actual = compute(path, expected.algorithm)
    if actual.hex != expected.hex.lower():
        path.unlink(missing_ok=True)
        raise ChecksumMismatch(name, expected, actual)
    return actual
