"""What the model cache holds, read from the downloader's completion markers.

The downloader writes a marker (`.llmserver-download.json` in a downloaded folder, or
`.<file>.llmserver-download.json` beside a single file) only after every file passed its checksum,
with the digests it verified. `llmserver list-loaded --details` lists them from here.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

MARKER_SUFFIX = ".llmserver-download.json"


@dataclasses.dataclass(frozen=True)
class CachedDownload:
    """One finished download: where, from what, and each file's verified digest."""

    path: str
    source: str
    files: int
    bytes: int
    digests: dict[str, str]


def _source(data: dict[str, Any]) -> str:
    if "repo" in data:
        file = f" / {data['file']}" if data.get("file") else ""
        return f"hf:{data['repo']}@{data.get('revision')}{file} (commit {data.get('commit')})"
    source = data.get("source") or {}
    if "s3" in source:
        s3 = source["s3"]
        where = f" at {s3['endpoint']}" if s3.get("endpoint") else ""
        key = s3.get("key") or f"{s3.get('prefix')}/"
        return f"s3://{s3.get('bucket')}/{key}{where}"
    if "url" in source:
        return str(source["url"].get("url"))
    return "unknown"


def _served(marker: pathlib.Path) -> pathlib.Path:
    if marker.name == MARKER_SUFFIX:
        return marker.parent
    return marker.with_name(marker.name[1 : -len(MARKER_SUFFIX)])


def downloads(cache_dir: pathlib.Path) -> list[CachedDownload]:
    """Every finished download under `cache_dir`, sorted by path; unreadable markers are skipped."""
    found = []
    for marker in sorted(cache_dir.rglob(f"*{MARKER_SUFFIX}")) if cache_dir.is_dir() else ():
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        files = data.get("files") or {}
        found.append(CachedDownload(
            path=str(_served(marker)), source=_source(data), files=len(files),
            bytes=sum(size or 0 for size in files.values()), digests=dict(data.get("digests") or {}),
        ))  # fmt: skip
    return found
