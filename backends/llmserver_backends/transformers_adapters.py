"""LoRA adapters on a transformers model with peft, switched per batch.

peft injects LoRA layers into the loaded model once the first adapter arrives (a `PeftModel`);
after that the same weights serve every adapter and the base: `set_adapter(name)` picks the
adapter a forward pass runs with, and `disable_adapter()` runs the base model bit for bit as
before any adapter loaded. The scheduler holds one adapter per batch, so requests for different
adapters never share a forward pass. Removing the last adapter unwraps the model again (peft's
`unload`, without merging), because an empty PeftModel cannot run.

All methods run in the backend's model thread (the scheduler's), never beside a forward pass.
"""

from __future__ import annotations

import contextlib
import pathlib
import warnings
from collections.abc import Iterator
from typing import Any

from llmserver_backends import base


class AdapterSet:
    """The model as it runs with or without each loaded LoRA adapter."""

    def __init__(self, model: Any) -> None:
        self._base = model
        self._peft: Any = None  # the PeftModel wrapping `_base` while any adapter is loaded

    @property
    def names(self) -> tuple[str, ...]:
        """Adapters loaded now, in load order."""
        return tuple(self._peft.peft_config) if self._peft is not None else ()

    def load(self, name: str, path: str) -> None:
        """Loads the peft adapter folder at `path` as `name` (replacing a loaded one of that name)."""
        if not (pathlib.Path(path) / "adapter_config.json").is_file():
            raise base.UnsupportedRequest(
                f"adapter {name!r}: {path} is not a peft adapter folder (no adapter_config.json)"
            )
        try:
            import peft
        except ImportError as error:
            raise base.UnsupportedRequest("LoRA adapters on the transformers backend need the peft package") from error
        if name in self.names:
            self.unload(name)
        try:
            if self._peft is None:
                self._peft = peft.PeftModel.from_pretrained(self._base, path, adapter_name=name, is_trainable=False)
                self._peft.eval()
            else:
                self._peft.load_adapter(path, adapter_name=name, is_trainable=False)
        except (ValueError, KeyError, RuntimeError, OSError) as error:
            raise base.UnsupportedRequest(f"adapter {name!r} does not fit this model: {error}") from error

    def unload(self, name: str) -> None:
        """Removes adapter `name`; the model is the plain base model again after the last one."""
        if name not in self.names:
            raise base.UnsupportedRequest(f"no adapter named {name!r} is loaded")
        if len(self.names) == 1:
            self._base = self._peft.unload()
            self._peft = None
        else:
            with warnings.catch_warnings():  # "adapter X was active ...": the next batch picks its own
                warnings.filterwarnings("ignore", message=".*was active which is now deleted.*")
                self._peft.delete_adapter(name)

    @contextlib.contextmanager
    def active(self, name: str | None) -> Iterator[Any]:
        """The module to call for a forward pass with adapter `name` (None: the base model)."""
        if self._peft is None:
            if name is not None:
                raise base.UnsupportedRequest(f"no adapter named {name!r} is loaded")
            yield self._base
        elif name is None:
            with self._peft.disable_adapter():
                yield self._peft
        else:
            if name not in self._peft.peft_config:
                raise base.UnsupportedRequest(f"no adapter named {name!r} is loaded")
            self._peft.set_adapter(name)
            yield self._peft
