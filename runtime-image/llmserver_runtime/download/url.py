"""URL sources (one file over http or https, its SHA-256 declared) for the direct downloader.

The standard library's client is enough: a HEAD for the size (optional: the server may refuse it),
then a GET, with `Range: bytes=N-` when resuming; a server that ignores the range answers 200 and
the part file starts over.
"""

from __future__ import annotations

import dataclasses
import http.client
import pathlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

from llmserver_api import paths

from llmserver_runtime.download import checksum, direct, errors

_CHUNK = 1024 * 1024
_TIMEOUT = 60.0


def split_fragment(value: str) -> tuple[str, str | None]:
    """`https://h/f.gguf#sha256=HEX` -> (`https://h/f.gguf`, HEX); no fragment: (value, None)."""
    url, _, fragment = value.partition("#")
    if fragment.startswith("sha256="):
        return url, fragment[len("sha256="):]
    return value, None


@dataclasses.dataclass
class UrlSource:
    """One file and the SHA-256 it must have."""

    url: str
    sha256: str
    cache_dir: pathlib.Path

    def __post_init__(self) -> None:
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"only http and https URLs are downloaded, not {self.url!r}")
        self.sha256 = self.sha256.lower()
        self.served_path = self.cache_dir / paths.url_path(self.url, self.sha256)  # validates both
        self.target = self.served_path.parent
        self.marker = self.target / f".{self.served_path.name}{direct.MARKER}"
        parts = urllib.parse.urlsplit(self.url)
        self.label = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"  # no query, no userinfo
        self.identity = {"url": {"url": self.url, "sha256": self.sha256}}

    def resolve(self) -> direct.DirectPlan:
        size: int | None = None
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url, method="HEAD"), timeout=_TIMEOUT) as answer:
                length = answer.headers.get("Content-Length")
                size = int(length) if length and length.isdigit() else None
        except urllib.error.HTTPError as exc:
            if exc.code not in (405, 501):  # HEAD not allowed: the GET will tell
                raise
        digest = checksum.Digest("sha256", self.sha256)
        return direct.DirectPlan((direct.RemoteFile(self.served_path.name, size, digest, self.url),))

    def open_from(self, file: direct.RemoteFile, offset: int) -> tuple[int, Iterator[bytes]]:
        if file.size is not None and offset >= file.size:
            return offset, iter(())
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        answer = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=_TIMEOUT)
        start = offset if answer.status == 206 else 0

        def chunks() -> Iterator[bytes]:
            with answer:
                while chunk := answer.read(_CHUNK):
                    yield chunk

        return start, chunks()

    def classify(self, exc: BaseException) -> errors.DownloadError:
        if isinstance(exc, errors.DownloadError):
            return exc
        for error in errors.chain(exc):
            if isinstance(error, urllib.error.HTTPError):
                if error.code in (408, 429) or error.code >= 500:
                    return errors.DownloadError(f"{self.label} answered HTTP {error.code}", transient=True)
                return errors.DownloadError(f"{self.label} answered HTTP {error.code} {error.reason}", transient=False)
        for error in errors.chain(exc):
            if isinstance(error, (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)):
                return errors.DownloadError(f"cannot reach {self.label} ({type(error).__name__})", transient=True)
        return errors.unexpected(exc)
