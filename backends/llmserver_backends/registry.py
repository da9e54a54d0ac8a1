"""Backend registry keyed by the CRD's backend enum; imports engines lazily.

Importing this module never imports torch, vllm, llama_cpp or mlx: each entry names the module
that holds the class, imported only when that backend is created.
"""

from __future__ import annotations

import importlib

from llmserver_backends import base

# CRD backend enum value (minus "auto", resolved before this point) -> "module:Class".
BACKENDS: dict[str, str] = {
    "llama-cpp": "llmserver_backends.llama_cpp:LlamaCppBackend",
    "transformers": "llmserver_backends.transformers:TransformersBackend",
    "vllm": "llmserver_backends.vllm:VllmBackend",
    "mlx": "llmserver_backends.mlx:MlxBackend",
    "mlx-vlm": "llmserver_backends.mlx_vlm:MlxVlmBackend",
}

# Not part of the CRD enum: a deterministic backend for tests of other components.
TEST_BACKENDS: dict[str, str] = {"fake": "llmserver_backends.fake:FakeBackend"}


class UnknownBackend(ValueError):
    """Raised for a backend name that is not registered. Never falls back to another engine."""


def backend_class(kind: str) -> type[base.ModelBackend]:
    """The class registered for `kind`, imported on demand."""
    target = BACKENDS.get(kind) or TEST_BACKENDS.get(kind)
    if target is None:
        known = ", ".join(sorted(BACKENDS) + sorted(TEST_BACKENDS))
        raise UnknownBackend(f"unknown backend {kind!r}; known backends: {known}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create(kind: str, config: base.BackendConfig) -> base.ModelBackend:
    """A new, not yet loaded backend of `kind`."""
    return backend_class(kind)(config)
