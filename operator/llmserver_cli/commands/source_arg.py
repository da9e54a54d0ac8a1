"""The SOURCE strings `add-server` takes (--model-path, --adapter NAME=SOURCE), read into the
spec's `source` wire object. One reader for both flags, so a model and its adapters are written
the same way:

    OWNER/NAME[/FILE]                 a Hugging Face repo (optionally one file of it)
    pvc:CLAIM[/PATH]                  files already on a PersistentVolumeClaim
    s3://BUCKET/KEY, s3://BUCKET/PREFIX/   one object, or every object under a prefix
    https://HOST/FILE#sha256=HEX      one file, verified by its checksum
    /abs/path, ~/path, ./path         with --local only: a file or folder on this machine

The reader only splits the string; the API's own model checks each part (patterns, lengths)
and add-server translates its errors back to the flag.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any

FORMS = "OWNER/NAME[/FILE], pvc:CLAIM[/PATH], s3://BUCKET/KEY, s3://BUCKET/PREFIX/ or https://HOST/FILE#sha256=HEX"
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_LOCAL_PREFIXES = ("/", "~", "./", "../")


class SourceError(ValueError):
    """A SOURCE string that is none of the forms; the message names the flag."""


@dataclasses.dataclass(frozen=True)
class S3Options:
    """What an s3:// string cannot say: the store's endpoint and region, and the credentials Secret."""

    endpoint: str | None = None
    region: str | None = None
    secret: str | None = None


def looks_local(value: str) -> bool:
    """True for a path on this machine (absolute, `~`, `./`, `../`, or `.`), never for a repo id."""
    return value in (".", "..") or value.startswith(_LOCAL_PREFIXES)


def is_local(value: str) -> bool:
    """With --local: a path (looks_local) or a relative name that exists here."""
    return looks_local(value) or pathlib.Path(value).expanduser().exists()


def local(value: str, flag: str) -> dict[str, Any]:
    """A local file or folder as a `source.pvc` local mode reads (claimName: the folder holding it,
    path: its name); the path must exist."""
    path = pathlib.Path(value).expanduser().absolute()
    if not path.exists():
        raise SourceError(f"{flag}: {path} does not exist (a local model is a file, e.g. a GGUF, or a folder)")
    if path.name.startswith(".") or path.parent == path:
        return {"pvc": {"claimName": str(path), "path": ""}}
    return {"pvc": {"claimName": str(path.parent), "path": path.name}}


def parse(value: str, flag: str, s3: S3Options | None = None) -> dict[str, Any]:
    """The `source` wire object `value` names; SourceError (naming `flag`) when it is none of FORMS."""
    s3 = s3 or S3Options()
    if value.startswith("pvc:"):
        claim, _, path = value[len("pvc:"):].partition("/")
        if not claim:
            raise SourceError(f"{flag} pvc:CLAIM[/PATH] needs a claim name, got {value!r}")
        return {"pvc": {"claimName": claim, "path": path}}
    if value.startswith("s3://"):
        return {"s3": _s3(value, flag, s3)}
    if _SCHEME.match(value) and not value.startswith("hf://"):
        return {"url": _url(value, flag)}
    if looks_local(value):
        raise SourceError(f"{flag} {value!r} is a local path: local files are served with --local "
                          f"(in a cluster use pvc:CLAIM/PATH)")  # fmt: skip
    repo = value.removeprefix("hf://").removeprefix("hf:")
    owner, slash, rest = repo.partition("/")
    name, _, file = rest.partition("/")
    if not owner or not slash or not name:
        raise SourceError(f"{flag} takes {FORMS}; got {value!r}")
    hugging_face: dict[str, Any] = {"repo": f"{owner}/{name}"}
    if file:
        hugging_face["file"] = file
    return {"huggingFace": hugging_face}


def _s3(value: str, flag: str, options: S3Options) -> dict[str, Any]:
    bucket, _, rest = value[len("s3://"):].partition("/")
    if not bucket or not rest.strip("/"):
        raise SourceError(f"{flag} s3 source is s3://BUCKET/KEY or s3://BUCKET/PREFIX/, got {value!r}")
    s3: dict[str, Any] = {"bucket": bucket}
    s3["prefix" if rest.endswith("/") else "key"] = rest.rstrip("/")
    if options.endpoint:
        s3["endpoint"] = options.endpoint
    if options.region:
        s3["region"] = options.region
    if options.secret:
        s3["credentialsSecretRef"] = {"name": options.secret}
    return s3


def _url(value: str, flag: str) -> dict[str, Any]:
    url, _, fragment = value.partition("#")
    if not url.startswith(("http://", "https://")):
        raise SourceError(f"{flag}: only s3:// and http(s):// URLs are sources, not {url!r}")
    sha256 = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else ""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise SourceError(f"{flag}: an URL source needs its checksum: https://HOST/FILE#sha256=<64 hex digits>, "
                          f"got {value!r}")  # fmt: skip
    return {"url": url, "sha256": sha256.lower()}


def adapter(value: str, flag: str, s3: S3Options | None, allow_local: bool) -> dict[str, Any]:
    """`NAME=SOURCE` as one spec.adapters entry (`{name, source}`)."""
    name, equals, source = value.partition("=")
    if not equals or not name or not source:
        raise SourceError(f"{flag} takes NAME=SOURCE (SOURCE: {FORMS}), got {value!r}")
    if allow_local and is_local(source):
        return {"name": name, "source": local(source, f"{flag} {name}")}
    return {"name": name, "source": parse(source, f"{flag} {name}", s3)}
