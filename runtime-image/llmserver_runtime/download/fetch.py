"""What to download and the download itself, through huggingface-hub's own client.

huggingface-hub does the transfer: it resumes an interrupted body with a Range request, skips files
whose metadata says they are current, and writes into `local_dir`. On top of it we add what a
Kubernetes Job needs: a completion marker so a finished download is skipped with no network at
all, a disk-space check before the first byte, and removal of partial files a killed pod left.
A `--file` that is one part of a split GGUF (`m-00001-of-00003.gguf`) brings every part: llama.cpp
loads the split from its first part and opens the others by name next to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
from typing import Any

from llmserver_api import detection, paths

from llmserver_runtime.download import checksum, errors

MARKER = ".llmserver-download.json"


@dataclasses.dataclass(frozen=True)
class Request:
    """One `llmserver-runtime download` invocation."""

    repo: str
    revision: str
    file: str | None
    cache_dir: pathlib.Path
    token: str | None = dataclasses.field(default=None, repr=False)

    @property
    def target(self) -> pathlib.Path:
        """Where the repo lands: cache_dir / paths.huggingface_dir(repo, revision)."""
        return self.cache_dir / paths.huggingface_dir(self.repo, self.revision)

    @property
    def served_path(self) -> pathlib.Path:
        """What the runtime loads: the directory, or the single file in it."""
        return self.cache_dir / paths.huggingface_model_path(self.repo, self.revision, self.file)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The resolved commit and the files (with sizes, when the Hub states them) to fetch."""

    commit: str
    files: dict[str, int | None]
    digests: dict[str, checksum.Digest] = dataclasses.field(default_factory=dict)  # what the Hub declares

    @property
    def total_bytes(self) -> int | None:
        sizes = list(self.files.values())
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


def _marker(request: Request) -> pathlib.Path:
    return request.target / MARKER


def completed_plan(request: Request) -> Plan | None:
    """The plan of an earlier, finished download of the same request whose files are all still
    there with their sizes; None if anything is missing (then we download)."""
    try:
        data: dict[str, Any] = json.loads(_marker(request).read_text())
    except (OSError, ValueError):
        return None
    if (data.get("repo"), data.get("revision"), data.get("file")) != (request.repo, request.revision, request.file):
        return None
    files: dict[str, int | None] = data.get("files") or {}
    for name, size in files.items():
        path = request.target / name
        if not path.is_file() or (size is not None and path.stat().st_size != size):
            return None
    return Plan(commit=str(data.get("commit")), files=files)


def mark_complete(request: Request, plan: Plan, digests: dict[str, str] | None = None) -> None:
    """Written last, atomically: its presence means every file of the plan arrived (and, with
    `digests`, was verified: `{name: "sha256:..."}`)."""
    payload = {"repo": request.repo, "revision": request.revision, "file": request.file,
               "commit": plan.commit, "files": plan.files, "digests": digests or {}}  # fmt: skip
    tmp = _marker(request).with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, _marker(request))


def resolve(request: Request) -> Plan:
    """Asks the Hub for the commit and the file list (the same calls snapshot_download makes)."""
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    token: str | bool = request.token or False  # False: never fall back to a token file on disk
    if request.file:
        files: dict[str, int | None] = {}
        digests: dict[str, checksum.Digest] = {}
        pinned: str | None = None  # the commit of the first answer: every part from the same one
        for name in detection.split_parts(request.file) or (request.file,):
            url = huggingface_hub.hf_hub_url(request.repo, name, revision=pinned or request.revision)
            try:
                metadata = huggingface_hub.get_hf_file_metadata(url, token=token)
            except hf_errors.RemoteEntryNotFoundError as exc:
                if name == request.file:
                    raise
                raise errors.DownloadError(
                    f"file {name!r}, a part of the split GGUF {request.file!r}, not found in {request.repo} "
                    f"at revision {request.revision!r}", transient=False) from exc  # fmt: skip
            pinned = pinned or metadata.commit_hash
            files[name] = metadata.size
            digest = checksum.of_hub_etag(metadata.etag)
            if digest is not None:
                digests[name] = digest
        return Plan(commit=pinned or request.revision, files=files, digests=digests)
    api = huggingface_hub.HfApi(token=token)
    info = api.repo_info(request.repo, revision=request.revision)
    commit = info.sha or request.revision
    entries = [
        entry
        for entry in api.list_repo_tree(request.repo, revision=commit, recursive=True)
        if isinstance(entry, huggingface_hub.hf_api.RepoFile)
    ]
    return Plan(commit=commit, files={e.path: e.size for e in entries},
                digests={e.path: d for e in entries if (d := _tree_digest(e)) is not None})  # fmt: skip


def _tree_digest(entry: Any) -> checksum.Digest | None:
    """An LFS file's SHA-256, else the git blob id (SHA-1 of the content) of a regular file."""
    lfs = getattr(entry, "lfs", None)
    sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
    if sha256:
        return checksum.Digest("sha256", str(sha256).lower())
    return checksum.of_hub_etag(getattr(entry, "blob_id", None))


def partial_dir(request: Request) -> pathlib.Path:
    """Where huggingface-hub keeps in-flight `*.incomplete` files for a local_dir download."""
    return request.target / ".cache" / "huggingface" / "download"


def remove_stale_partials(request: Request) -> int:
    """Deletes `*.incomplete` files a killed process left (their names are unique per process, so
    nothing can resume them); returns the bytes freed."""
    freed = 0
    for stale in partial_dir(request).rglob("*.incomplete"):
        try:
            freed += stale.stat().st_size
            stale.unlink()
        except OSError:
            pass
    return freed


def present_bytes(request: Request, plan: Plan) -> int:
    """Bytes of the plan's files already complete on disk."""
    total = 0
    for name, size in plan.files.items():
        path = request.target / name
        if path.is_file() and (size is None or path.stat().st_size == size):
            total += path.stat().st_size
    return total


def check_disk_space(request: Request, plan: Plan) -> None:
    """Fails before downloading when the volume cannot hold what is still missing."""
    total = plan.total_bytes
    if total is None:
        return
    needed = total - present_bytes(request, plan)
    request.target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(request.target).free
    if needed > free:
        raise errors.DiskFull(needed, free, str(request.cache_dir))


def download(request: Request, plan: Plan, max_workers: int = 4) -> pathlib.Path:
    """Fetches the plan's files into `request.target` (pinned to the resolved commit)."""
    import huggingface_hub

    token: str | bool = request.token or False
    if request.file:
        for name in plan.files:  # the file, or every part of its split GGUF
            huggingface_hub.hf_hub_download(
                request.repo, name, revision=plan.commit, local_dir=request.target, token=token
            )
    else:
        huggingface_hub.snapshot_download(
            request.repo, revision=plan.commit, local_dir=request.target, token=token, max_workers=max_workers
        )
    return request.served_path
