"""LoRA adapters as models: `<served>:<name>` names, the `--adapter NAME=PATH` specs, and the
live load/unload that keeps adapter paths inside the directory tree the runtime trusts.

The backend is the one source of truth for which adapters are loaded (`ModelBackend.adapters`);
this module only maps model names onto them, records each adapter's path (to tell a repeated load
from a replacement) and serialises loads and unloads so two calls for one name never interleave.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
from collections.abc import Iterable, Mapping

import llmserver_api
from llmserver_api import paths, sources
from llmserver_backends import base

from llmserver_api.protocol import errors

_NAME = re.compile(sources.ADAPTER_NAME)
ROOT_ENV = "LLMSERVER_ADAPTER_ROOT"


def parse_specs(items: Iterable[str]) -> dict[str, str]:
    """`["sql=/models/a", "chat=/models/b"]` -> {name: path}; a ValueError names the bad item.

    Names follow spec.adapters' rule (letters, digits, '.', '_', '-'; at most 63), each once."""
    parsed: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"adapter {item!r} is not of the form NAME=PATH")
        if not _NAME.match(name):
            raise ValueError(
                f"adapter name {name!r} must be 1-63 letters, digits, '.', '_' or '-', starting and ending "
                "with a letter or digit"
            )
        if name in parsed:
            raise ValueError(f"adapter {name!r} is given twice")
        parsed[name] = path
    return parsed


def split_env(value: str) -> list[str]:
    """LLMSERVER_ADAPTERS (`NAME=PATH,NAME=PATH`) as the items `--adapter` repeats."""
    return [item.strip() for item in value.split(",") if item.strip()]


def trusted_root(model_path: str, configured: str | None) -> pathlib.Path:
    """The directory tree live loads may read from: LLMSERVER_ADAPTER_ROOT when set; else the model
    cache mount (/models) when the model lies in it; else the directory holding the model."""
    if configured:
        return pathlib.Path(os.path.realpath(configured))
    model = pathlib.Path(os.path.realpath(model_path))
    cache = pathlib.Path(os.path.realpath(paths.CACHE_MOUNT))
    if model.is_relative_to(cache):
        return cache
    return model.parent


def confine(path: str, root: pathlib.Path) -> str:
    """`path` with symlinks resolved, if it exists inside `root`; a 400 naming lora_path otherwise
    (a relative path, `..` or a symlink leading out of the tree are all refused)."""
    if not os.path.isabs(path):
        raise errors.invalid_request(f"lora_path must be an absolute path under {root}.", "lora_path")
    resolved = pathlib.Path(os.path.realpath(path))
    if not resolved.is_relative_to(root):
        raise errors.invalid_request(
            f"lora_path must stay under {root}, the directory this server loads adapters from.", "lora_path"
        )
    if not resolved.exists():
        raise errors.APIError(404, f"lora_path {path} does not exist.", param="lora_path", code="not_found")
    return str(resolved)


class Adapters:
    """The adapters one runtime serves, addressed as `<model>:<name>`."""

    def __init__(self, backend: base.ModelBackend, model: str, root: pathlib.Path) -> None:
        self.backend = backend
        self.model = model
        self.root = root
        # Resolved as live loads are, so a live load of a start adapter's own path is a no-op.
        self._paths: dict[str, str] = {name: os.path.realpath(path) for name, path in backend.config.adapters.items()}
        self._lock = asyncio.Lock()

    def names(self) -> tuple[str, ...]:
        """Adapters loaded now, in load order."""
        return tuple(self.backend.adapters)

    def model_name(self, adapter: str) -> str:
        """What clients send as `model` for `adapter`."""
        return f"{self.model}:{adapter}"

    def resolve(self, requested: str) -> str | None:
        """The adapter a `model` field asks for (None: the base model); 404 model_not_found for a
        name that is neither the base model nor one of its loaded adapters."""
        if requested == self.model:
            return None
        prefix = self.model + ":"
        if requested.startswith(prefix) and requested[len(prefix) :] in self.names():
            return requested[len(prefix) :]
        raise errors.model_not_found(requested)

    def require_generation(self, adapter: str | None, capability: llmserver_api.Capability) -> None:
        """400 when an adapter is asked for work other than generation (embeddings, rerank)."""
        if adapter is not None and capability not in (
            llmserver_api.Capability.TEXT_GENERATION,
            llmserver_api.Capability.VISION,
        ):
            raise errors.invalid_request(
                f"The model `{self.model_name(adapter)}` is a LoRA adapter: adapters serve chat and completions "
                f"only; send {capability.value} requests to `{self.model}`.",
                "model",
            )

    def _require_live(self) -> None:
        if not self.backend.supports_live_adapters:
            raise errors.invalid_request(
                f"The {self.backend.kind} engine loads LoRA adapters only at start (serve --adapter NAME=PATH); "
                "changing them needs a restart.",
                "lora_name",
            )

    async def load(self, name: str, path: str, *, inplace: bool = False) -> str:
        """Loads `name` from `path` (confined to the trusted root) while the model stays loaded.

        Loading a loaded name again from the same path changes nothing; from another path it
        needs `inplace` (vLLM's load_inplace) and replaces the adapter."""
        self._require_live()
        if not _NAME.match(name):
            raise errors.invalid_request(
                "lora_name must be 1-63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit.",
                "lora_name",
            )
        resolved = confine(path, self.root)
        async with self._lock:
            if name in self.names():
                if self._paths.get(name) == resolved:
                    return f"Success: LoRA adapter '{name}' is already loaded from {resolved}."
                if not inplace:
                    raise errors.invalid_request(
                        f"The LoRA adapter '{name}' is already loaded from another path; set load_inplace to "
                        "replace it.",
                        "lora_name",
                    )
                await self.backend.unload_adapter(name)
                self._paths.pop(name, None)
            await self.backend.load_adapter(name, resolved)
            self._paths[name] = resolved
        return f"Success: LoRA adapter '{name}' added successfully."

    async def unload(self, name: str) -> str:
        """Removes a loaded adapter; requests for it answer 404 from now on."""
        self._require_live()
        async with self._lock:
            if name not in self.names():
                raise errors.APIError(
                    404, f"The LoRA adapter '{name}' cannot be found.", param="lora_name", code="model_not_found"
                )
            await self.backend.unload_adapter(name)
            self._paths.pop(name, None)
        return f"Success: LoRA adapter '{name}' removed successfully."

    def paths(self) -> Mapping[str, str]:
        """Each loaded adapter's path, as given at start or resolved at load."""
        return {name: self._paths.get(name, "") for name in self.names()}
