"""Freeing the local model cache (`llmserver clear-cache`) without pulling files from under a
running `llmserver up`.

The unit of the cache is one download's *entry*: a Hub repo at a revision (`hf/OWNER/NAME/REV`,
its marker inside), an URL's checksum folder (`url/HOST/SHA256`), an S3 object (with its marker
and partial file beside it) or prefix folder, the --demo model's folder. What a running server
uses (cache_use) protects the entry holding it; everything else may go.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil

from llmserver_cli.local import cache_index

# cache-relative depth of one entry, by the cache's top folder (llmserver_api.paths)
_DEPTH = {"hf": 4, "url": 3, "demo": 2}
PART_SUFFIX = ".part"


@dataclasses.dataclass(frozen=True)
class Freed:
    """One deleted path and the bytes it held."""

    path: pathlib.Path
    bytes: int


def entry_of(path: pathlib.Path, cache_dir: pathlib.Path) -> pathlib.Path:
    """The cache entry holding `path` (a served file or folder inside `cache_dir`)."""
    parts = path.relative_to(cache_dir).parts
    depth = _DEPTH.get(parts[0]) if parts else None
    if depth is not None and len(parts) >= depth:
        return cache_dir.joinpath(*parts[:depth])
    return path


def companions(path: pathlib.Path) -> list[pathlib.Path]:
    """`path` and the files that belong to it when it is a single downloaded file: its completion
    marker and its partial download (they sit beside it)."""
    return [path, path.with_name(f".{path.name}{cache_index.MARKER_SUFFIX}"), path.with_name(path.name + PART_SUFFIX)]


def size_of(path: pathlib.Path) -> int:
    """Bytes of the files under `path` (a file's own size); links are not followed."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _delete(path: pathlib.Path) -> Freed | None:
    if not path.exists() and not path.is_symlink():
        return None
    size = size_of(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return Freed(path, size)


def _prune_empty(folder: pathlib.Path, cache_dir: pathlib.Path) -> None:
    """Removes folders left empty above a deleted entry, up to (not including) the cache dir."""
    while folder != cache_dir and folder.is_relative_to(cache_dir):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def overlaps(a: pathlib.Path, b: pathlib.Path) -> bool:
    """True when one path is the other or inside it."""
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def delete(targets: list[pathlib.Path], cache_dir: pathlib.Path) -> list[Freed]:
    """Deletes each target (and a single file's marker and partial), then folders left empty."""
    freed: list[Freed] = []
    for target in targets:
        for path in companions(target) if not target.is_dir() else [target]:
            done = _delete(path)
            if done is not None:
                freed.append(done)
        _prune_empty(target.parent, cache_dir)
    return freed


def everything_but(cache_dir: pathlib.Path, keep: list[pathlib.Path]) -> list[pathlib.Path]:
    """What `--all` deletes: every path under `cache_dir` that neither is a kept entry (or one of
    its companions) nor holds one; folders holding a kept entry are walked into."""
    kept = {path for entry in keep for path in companions(entry)}
    targets: list[pathlib.Path] = []

    def walk(folder: pathlib.Path) -> None:
        for child in sorted(folder.iterdir()):
            if child in kept:
                continue
            if any(path.is_relative_to(child) for path in kept) and child.is_dir() and not child.is_symlink():
                walk(child)
            else:
                targets.append(child)

    if cache_dir.is_dir():
        walk(cache_dir)
    return targets
