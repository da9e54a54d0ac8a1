"""Downloads that are plain byte streams (S3 objects, one URL): resumable, verified, marked complete.

Each file is written to `<name>.part`; a retry or a restarted pod asks for the rest with a byte
range from the part's size, so only what is missing crosses the network. A finished part is checked
against its declared digest and only then renamed into place; the marker (the same file name as
Hub downloads use) is written last, with the verified digests, so a finished download is skipped
without any network. The source kinds plug in through `DirectSource`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from llmserver_runtime.download import checksum, errors, progress

MARKER = ".llmserver-download.json"
PART_SUFFIX = ".part"


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its cache-relative name under the target, size and declared digest."""

    name: str
    size: int | None
    digest: checksum.Digest | None
    locator: str  # the S3 key or the URL


@dataclasses.dataclass(frozen=True)
class DirectPlan:
    """Every file of one source."""

    files: tuple[RemoteFile, ...]

    @property
    def total_bytes(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


class DirectSource(Protocol):
    """An S3 bucket/prefix/key or an URL, seen by the download loop."""

    label: str  # for messages: s3://bucket/key, https://host/file
    target: pathlib.Path  # the folder the files land in
    served_path: pathlib.Path  # what the runtime loads: the folder, or the one file
    marker: pathlib.Path
    identity: dict[str, Any]  # what the marker must match to skip the download

    def resolve(self) -> DirectPlan: ...

    def open_from(self, file: RemoteFile, offset: int) -> tuple[int, Iterator[bytes]]:
        """The body from `offset` on: (the offset it really starts at, 0 when the server ignored
        the range; the chunks)."""
        ...

    def classify(self, exc: BaseException) -> errors.DownloadError: ...


def completed(source: DirectSource) -> dict[str, Any] | None:
    """The marker of an earlier finished download of the same source whose files are all still
    there with their sizes; None otherwise."""
    try:
        data: dict[str, Any] = json.loads(source.marker.read_text())
    except (OSError, ValueError):
        return None
    if data.get("source") != source.identity:
        return None
    for name, size in (data.get("files") or {}).items():
        path = source.target / name
        if not path.is_file() or (size is not None and path.stat().st_size != size):
            return None
    return data


def mark_complete(source: DirectSource, plan: DirectPlan, digests: dict[str, str]) -> None:
    """Written last, atomically, after every file was verified."""
    payload = {"source": source.identity, "files": {f.name: f.size for f in plan.files}, "digests": digests}
    source.marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = source.marker.with_name(source.marker.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, source.marker)


def _part(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + PART_SUFFIX)


def check_disk_space(source: DirectSource, plan: DirectPlan) -> None:
    """Fails before downloading when the volume cannot hold what is still missing."""
    if plan.total_bytes is None:
        return
    source.target.mkdir(parents=True, exist_ok=True)
    needed = plan.total_bytes - measure(source, plan, "").bytes_done
    free = shutil.disk_usage(source.target).free
    if needed > free:
        raise errors.DiskFull(needed, free, str(source.target))


def fetch_file(source: DirectSource, file: RemoteFile) -> str:
    """Fetches (or resumes) one file, verifies it, moves it into place; returns its digest text."""
    dest = source.target / file.name
    if not (dest.is_file() and (file.size is None or dest.stat().st_size == file.size)):
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = _part(dest)
        offset = part.stat().st_size if part.is_file() else 0
        if file.size is not None and offset > file.size:
            offset = 0
        start, chunks = source.open_from(file, offset)
        with part.open("r+b" if part.is_file() else "wb") as out:
            out.seek(start)
            out.truncate()
            for chunk in chunks:
                out.write(chunk)
        size = part.stat().st_size
        if file.size is not None and size != file.size:
            raise errors.DownloadError(f"{file.name} arrived incomplete ({size} of {file.size} bytes)", transient=True)
        if file.digest is not None:
            checksum.verify(part, file.name, file.digest)
        os.replace(part, dest)
        if file.digest is not None:
            return str(file.digest)
    if file.digest is not None:  # found complete on disk (a run killed before its marker): check it
        return str(checksum.verify(dest, file.name, file.digest))
    return str(checksum.compute(dest, "sha256"))  # nothing declared: record what we serve


def measure(source: DirectSource, plan: DirectPlan, message: str) -> progress.Snapshot:
    """Complete files plus the parts of files in flight."""
    done_files = done_bytes = 0
    for file in plan.files:
        dest = source.target / file.name
        for path, complete in ((dest, True), (_part(dest), False)):
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if complete and (file.size is None or size == file.size):
                done_files += 1
                done_bytes += size
                break
            if not complete:
                done_bytes += size
    total = plan.total_bytes
    if total is not None:
        done_bytes = min(done_bytes, total)
    return progress.Snapshot(done_bytes, total, done_files, len(plan.files), message)


def download(source: DirectSource, plan: DirectPlan, on_file: Callable[[RemoteFile], None] | None = None) -> dict[str, str]:
    """Every file of the plan, in order; the verified digests by name."""
    digests: dict[str, str] = {}
    for file in plan.files:
        if on_file is not None:
            on_file(file)
        digests[file.name] = fetch_file(source, file)
    return digests
