"""Sequences decoded together: one KV cache, left padding and an attention mask.

A `DecodeBatch` holds the rows that share one forward pass (the scheduler keeps one per adapter:
requests for different adapters never share a pass). Each row is left-padded to the longest
history in the batch; the attention mask hides the padding and every row carries its own position
ids, so a row's logits are what it would get alone (up to float rounding of different matrix
shapes). New requests join between decode steps: their prompts are prefilled together in one
padded pass, and their cache is left-padded with zeros (masked) and concatenated to the running
one along the batch. Finished or cancelled rows leave by index; leading columns that only padding
uses are cut off so the cache shrinks when a long request ends.

Joining needs a cache of plain `DynamicLayer`s (full attention, as Llama, Qwen, Mistral without a
sliding window). For any other cache (sliding-window or hybrid layers, recurrent state, a remote
code model's own cache) the batch takes new rows only when it is empty: requests are batched per
wave, which is still correct, only less eager. Legacy tuple caches (some remote-code models) are
sliced by hand; a cache of any other kind that cannot drop rows fails its batch with a message
that says to set `transformers.maxBatchSize: 1`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from llmserver_backends import base
from llmserver_backends import transformers_generation as generation

T = TypeVar("T")


@dataclasses.dataclass
class Row(Generic[T]):
    """One sequence in the batch plus the scheduler's handle for it (its job)."""

    job: T
    sequence: generation.Sequence


def keeps_last_logits_only(model: Any) -> dict[str, int]:
    """Forward kwargs that skip the vocabulary projection of every prompt position but the last
    (a prefill of 8 x 2k tokens over a 150k vocabulary would otherwise allocate ~10 GB of logits)."""
    forward = getattr(getattr(model, "get_base_model", lambda: model)(), "forward", None)
    try:
        accepted = inspect.signature(forward).parameters if forward is not None else {}
    except (TypeError, ValueError):
        return {}
    return {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}


class DecodeBatch(Generic[T]):
    """The rows of one adapter group and their shared KV cache."""

    def __init__(self, pad_id: int) -> None:
        self.rows: list[Row[T]] = []
        self._pad_id = pad_id
        self._cache: Any = None
        self._mask: Any = None  # (rows, cached positions) 1 for a real token, 0 for padding
        self._positions: Any = None  # (rows,) the position id of each row's next token
        self._joinable = True  # the cache is plain DynamicLayers: rows can join a running batch

    @property
    def accepts_new_rows(self) -> bool:
        """True when new requests can join now (always between waves, mid-wave only if joinable)."""
        return not self.rows or self._joinable

    def decode(self, forward: Callable[..., Any]) -> Any:
        """One forward pass for every row's last token; returns float CPU logits (rows, vocab)."""
        import torch

        device = self._mask.device
        tokens = torch.tensor([[row.sequence.last_token] for row in self.rows], device=device)
        mask = torch.cat([self._mask, torch.ones((len(self.rows), 1), dtype=self._mask.dtype, device=device)], dim=1)
        output = forward(
            input_ids=tokens, attention_mask=mask, position_ids=self._positions[:, None],
            past_key_values=self._cache, use_cache=True,
        )  # fmt: skip
        self._cache, self._mask = output.past_key_values, mask
        self._positions = self._positions + 1
        return output.logits[:, -1].float().cpu()

    def prefill(self, forward: Callable[..., Any], rows: list[Row[T]], device: Any) -> Any:
        """Runs the new rows' prompts in one left-padded pass and adds them to the batch; returns
        their float CPU logits (new rows, vocab) for the first token each."""
        import torch

        longest = max(len(row.sequence.prompt) for row in rows)
        tokens = torch.full((len(rows), longest), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for index, row in enumerate(rows):
            prompt = row.sequence.prompt
            tokens[index, longest - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[index, longest - len(prompt) :] = 1
        tokens, mask = tokens.to(device), mask.to(device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        output = forward(input_ids=tokens, attention_mask=mask, position_ids=positions, use_cache=True)
        self._join(rows, output.past_key_values, mask, positions[:, -1] + 1)
        return output.logits[:, -1].float().cpu()

    def _join(self, rows: list[Row[T]], cache: Any, mask: Any, positions: Any) -> None:
        import torch

        if not self.rows:
            self.rows, self._cache, self._mask, self._positions = list(rows), cache, mask, positions
            self._joinable = _plain_layers(cache) is not None
            return
        running, joining = _plain_layers(self._cache), _plain_layers(cache)
        if running is None or joining is None:  # accepts_new_rows kept this from happening
            raise RuntimeError("this model's KV cache cannot take rows into a running batch")
        width = max(self._mask.shape[1], mask.shape[1])
        merged = [
            (_cat_left_padded(old_keys, new_keys, width), _cat_left_padded(old_values, new_values, width))
            for (old_keys, old_values), (new_keys, new_values) in zip(running, joining, strict=True)
        ]
        from transformers import cache_utils

        self._cache = cache_utils.DynamicCache(ddp_cache_data=merged)
        self._mask = _cat_left_padded(self._mask, mask, width, dim=1)
        self._positions = torch.cat([self._positions, positions])
        self.rows.extend(rows)

    def drop(self, indices: list[int]) -> None:
        """Removes the rows at `indices` (finished or cancelled) and the padding only they needed."""
        import torch

        if not indices:
            return
        gone = set(indices)
        keep = [index for index in range(len(self.rows)) if index not in gone]
        self.rows = [self.rows[index] for index in keep]
        if not self.rows:
            self._cache = self._mask = self._positions = None
            return
        selected = torch.tensor(keep, dtype=torch.long, device=self._mask.device)
        self._cache = _select_rows(self._cache, selected)
        self._mask, self._positions = self._mask[selected], self._positions[selected]
        layers = _plain_layers(self._cache)
        used = self._mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if layers is not None and first > 0:  # columns nobody attends to any more
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]
            self._mask = self._mask[:, first:]


def _plain_layers(cache: Any) -> list[tuple[Any, Any]] | None:
    """The (keys, values) of each layer when the cache is only full-attention DynamicLayers."""
    from transformers import cache_utils

    layers = getattr(cache, "layers", None)
    if type(cache) is not cache_utils.DynamicCache or not layers:
        return None
    if any(type(layer) is not cache_utils.DynamicLayer or not layer.is_initialized for layer in layers):
        return None
    return [(layer.keys, layer.values) for layer in layers]


def _select_rows(cache: Any, selected: Any) -> Any:
    """The cache with only the `selected` batch rows."""
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(selected)
        return cache
    if isinstance(cache, tuple | list):  # legacy ((keys, values), ...) per layer
        return tuple(tuple(tensor[selected] for tensor in layer) for layer in cache)
    raise base.BackendError(
        f"this model's KV cache ({type(cache).__name__}) cannot drop finished requests from a batch; "
        "set transformers.maxBatchSize: 1"
    )


def _cat_left_padded(old: Any, new: Any, width: int, dim: int = -2) -> Any:
    """`old` and `new` left-padded with zeros to `width` along `dim`, stacked along the batch."""
    import torch

    def pad(tensor: Any) -> Any:
        missing = width - tensor.shape[dim]
        if missing == 0:
            return tensor
        shape = list(tensor.shape)
        shape[dim] = missing
        return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor], dim=dim)

    return torch.cat([pad(old), pad(new)], dim=0)
