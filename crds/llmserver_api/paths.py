"""Where a model lives inside the model cache volume, and which spec strings may become a path.

The download Job writes there and the runtime reads from there, so both sides compute the path
with this one pure function instead of agreeing by convention. Every spec field that ends up in a
path (a Hugging Face repo, revision and file; a PVC path) is refused by its pattern when it could
leave its folder or hide in it: no `..`, no absolute path, no segment starting with `.`. The
patterns are plain regular expressions, so the pydantic models and the generated CRD share them.
"""

from __future__ import annotations

import posixpath
import re

CACHE_MOUNT = "/models"

# One path segment: starts with a letter, digit or `_` (never `.`: no `.`, `..` or hidden names),
# then letters, digits, `-`, `_` and `.`; no `/`, `\`, `~` or whitespace.
SEGMENT = r"[A-Za-z0-9_][-A-Za-z0-9_.]*"
RELATIVE_PATH = rf"^{SEGMENT}(/{SEGMENT})*$"
# The same, or empty (a PVC path left empty means the claim's root).
OPTIONAL_RELATIVE_PATH = rf"^(|{SEGMENT}(/{SEGMENT})*)$"
# A Hugging Face repo id, owner/name: each one segment.
REPO_ID = rf"^[A-Za-z0-9][-A-Za-z0-9_.]*/{SEGMENT}$"
# An S3 bucket name (the S3 naming rules: lowercase letters, digits, `-` and `.`, 3-63 characters).
S3_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# An http(s) URL of one file (no whitespace), and a hex SHA-256.
HTTP_URL = r"^https?://[^\s/?#@]+/[^\s]*$"  # no user:password@ (the URL is in the Job's args)
SHA256_HEX = r"^[0-9a-fA-F]{64}$"
SAFE_PATH_RULE = (
    "segments separated by '/', each starting with a letter, digit or '_' (no '..', no absolute path, "
    "no hidden names)"
)


def _safe(segment: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", segment)


def is_relative_path(value: str) -> bool:
    """True when `value` stays inside the folder it is joined to (the RELATIVE_PATH pattern)."""
    return re.fullmatch(RELATIVE_PATH[1:-1], value) is not None


def _checked(what: str, value: str, pattern: str) -> str:
    if re.fullmatch(pattern[1:-1], value) is None:
        raise ValueError(f"{what} {value!r} is not a safe relative path: {SAFE_PATH_RULE}")
    return value


def _host(url: str) -> str:
    """The host[:port] of an URL, as one safe segment (`:` becomes `_`)."""
    return _safe(url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]) or "_"


def huggingface_dir(repo: str, revision: str = "main") -> str:
    """Cache-relative directory of a Hugging Face repo at a revision: `hf/<owner>/<name>/<revision>`.

    Raises ValueError for a repo or revision that could leave the cache (the CLIs pass them
    unvalidated by the CRD).
    """
    owner, name = _checked("repo", repo, REPO_ID).split("/", 1)
    return posixpath.join("hf", _safe(owner), _safe(name), _safe(_checked("revision", revision, RELATIVE_PATH)))


def huggingface_model_path(repo: str, revision: str = "main", file: str | None = None) -> str:
    """Cache-relative path the runtime loads: the repo directory, or the single file inside it."""
    directory = huggingface_dir(repo, revision)
    return posixpath.join(directory, _checked("file", file, RELATIVE_PATH)) if file else directory


def s3_path(bucket: str, key_or_prefix: str, endpoint: str | None = None) -> str:
    """Cache-relative path of an S3 object (a key: the file) or of a prefix (the folder holding the
    objects under it, by their names relative to the prefix): `s3/<bucket>/<key or prefix>`, or
    `s3-<endpoint host>/<bucket>/...` for an S3-compatible store, so two stores never share files.

    Raises ValueError for a bucket, key or prefix that could leave the cache.
    """
    _checked("bucket", bucket, S3_BUCKET)
    relative = _checked("key", key_or_prefix.rstrip("/"), RELATIVE_PATH)
    root = f"s3-{_host(endpoint)}" if endpoint else "s3"
    return posixpath.join(root, bucket, relative)


def url_path(url: str, sha256: str) -> str:
    """Cache-relative path of a single file from an URL: `url/<host>/<sha256>/<file name>`; the
    checksum is in the path, so new content never overwrites a file a runtime is serving."""
    _checked("url", url, HTTP_URL)
    _checked("sha256", sha256, SHA256_HEX)
    name = _safe(url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]).lstrip(".") or "file"
    return posixpath.join("url", _host(url), sha256.lower(), name)
