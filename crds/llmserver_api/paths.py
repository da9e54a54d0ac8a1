"""Where a model lives inside the model cache volume.

The download Job writes there and the runtime reads from there, so both sides compute the path
with this one pure function instead of agreeing by convention.
"""

from __future__ import annotations

import posixpath
import re

CACHE_MOUNT = "/models"


def _safe(segment: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", segment)


def huggingface_dir(repo: str, revision: str = "main") -> str:
    """Cache-relative directory of a Hugging Face repo at a revision: `hf/<owner>/<name>/<revision>`."""
    owner, name = repo.split("/", 1)
    return posixpath.join("hf", _safe(owner), _safe(name), _safe(revision))


def huggingface_model_path(repo: str, revision: str = "main", file: str | None = None) -> str:
    """Cache-relative path the runtime loads: the repo directory, or the single file inside it."""
    directory = huggingface_dir(repo, revision)
    return posixpath.join(directory, file) if file else directory
