"""LoRA adapters on vLLM: the engine flags that switch LoRA on, and a stable int id per adapter.

vLLM serves LoRA only when the engine starts with `--enable-lora`, sized by `--max-loras` (adapters
in one batch) and `--max-lora-rank` (the largest rank it can hold). They are set from the adapters
given at start: LoRA stays off for a server started without adapters unless extraArgs carry
`--enable-lora` (a live load then answers 400 saying so), because LoRA costs memory and speed
on every request. extraArgs come after these flags, so `--max-loras`/`--max-lora-rank` there win.

Each adapter gets an int id (vLLM's LoRARequest.lora_int_id, its cache key) that stays the same
for as long as the adapter is loaded from the same path; a reload from another path gets a new id
(vLLM's prefix cache keys by name and path, so old weights are never reused). Pure except
`LoraIds.request`, which imports vLLM.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

# vLLM's allowed --max-lora-rank values (vllm.config.lora.MaxLoRARanks).
RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_RANK = 16  # vLLM's default: room for the common ranks of adapters loaded live later


def adapter_rank(path: str) -> int | None:
    """The LoRA rank `r` a peft adapter folder declares (adapter_config.json), if readable."""
    try:
        config = json.loads((pathlib.Path(path) / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return None
    rank = config.get("r") if isinstance(config, dict) else None
    return rank if isinstance(rank, int) and rank > 0 else None


def max_lora_rank(ranks: Sequence[int | None]) -> int:
    """The smallest allowed --max-lora-rank that holds every known rank (at least vLLM's default)."""
    wanted = max([DEFAULT_RANK, *(r for r in ranks if r is not None)])
    return next((allowed for allowed in RANKS if allowed >= wanted), RANKS[-1])


def lora_argv(adapters: Mapping[str, str]) -> list[str]:
    """The LoRA flags for these start adapters (none without adapters: extraArgs may enable it)."""
    if not adapters:
        return []
    rank = max_lora_rank([adapter_rank(path) for path in adapters.values()])
    return ["--enable-lora", "--max-loras", str(len(adapters)), "--max-lora-rank", str(rank)]


class LoraIds:
    """Adapter name -> (int id, path), ids never reused within the process."""

    def __init__(self, adapters: Mapping[str, str]) -> None:
        self._next = 1
        self._loaded: dict[str, tuple[int, str]] = {}
        for name, path in adapters.items():
            self.add(name, path)

    def names(self) -> tuple[str, ...]:
        """Adapters loaded now, in load order."""
        return tuple(self._loaded)

    def add(self, name: str, path: str) -> int:
        """Records `name` at `path`; its id is kept when the path is the same, new otherwise."""
        current = self._loaded.get(name)
        if current is not None and current[1] == path:
            return current[0]
        self._loaded[name] = (self._next, path)
        self._next += 1
        return self._loaded[name][0]

    def remove(self, name: str) -> int | None:
        """Forgets `name`; its id, or None when it was not loaded."""
        entry = self._loaded.pop(name, None)
        return None if entry is None else entry[0]

    def get(self, name: str) -> tuple[int, str] | None:
        """(id, path) of a loaded adapter."""
        return self._loaded.get(name)

    def request(self, name: str) -> Any:
        """vLLM's LoRARequest for a loaded adapter (KeyError when it is not)."""
        from vllm.lora.request import LoRARequest

        lora_id, path = self._loaded[name]
        return LoRARequest(lora_name=name, lora_int_id=lora_id, lora_path=path)
