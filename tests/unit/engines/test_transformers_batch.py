"""The transformers backend's batch bookkeeping against a fake model whose next token depends on
every token it attends to and on each token's position: left padding, masks, position ids, rows
joining a running batch and rows leaving it must give each row exactly what it gets alone."""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import torch
from transformers import cache_utils

from llmserver_backends import transformers_batch as batching

VOCAB = 97


def _next_token(tokens: list[int]) -> int:
    """What the fake model predicts after `tokens` alone (positions 0, 1, ...)."""
    return sum(token * (position + 3) for position, token in enumerate(tokens)) % VOCAB


def fake_forward(
    input_ids: Any, attention_mask: Any, position_ids: Any, past_key_values: Any = None, use_cache: bool = True
) -> Any:
    """Caches (token, position) as its keys; predicts `_next_token` over the unmasked ones."""
    cache = past_key_values if past_key_values is not None else cache_utils.DynamicCache()
    entries = torch.stack([input_ids.float(), position_ids.float()], dim=-1)[:, None]  # (rows, 1, new, 2)
    keys, _ = cache.update(entries, entries.clone(), 0)
    seen = attention_mask[:, : keys.shape[2]].bool()
    score = (keys[:, 0, :, 0] * (keys[:, 0, :, 1] + 3) * seen).sum(dim=1).long() % VOCAB
    logits = torch.nn.functional.one_hot(score, VOCAB).float()[:, None].expand(-1, input_ids.shape[1], -1)
    return types.SimpleNamespace(logits=logits, past_key_values=cache)


@dataclasses.dataclass
class FakeSequence:
    prompt: list[int]
    generated: list[int] = dataclasses.field(default_factory=list)

    @property
    def last_token(self) -> int:
        return self.generated[-1]

    def expected_next(self) -> int:
        return _next_token(self.prompt + self.generated)


def _rows(*prompts: list[int]) -> list[batching.Row[str]]:
    return [batching.Row(f"job{len(p)}", FakeSequence(p)) for p in prompts]  # type: ignore[arg-type]


def _take(rows: list[batching.Row[str]], logits: Any) -> None:
    for index, row in enumerate(rows):
        sequence = row.sequence
        assert int(logits[index].argmax()) == sequence.expected_next()
        sequence.generated.append(int(logits[index].argmax()))


def test_rows_join_and_leave_and_each_gets_what_it_gets_alone() -> None:
    batch: batching.DecodeBatch[str] = batching.DecodeBatch(pad_id=5)
    first = _rows([1, 2, 3], [9, 8, 7, 6, 5, 4, 3])
    _take(first, batch.prefill(fake_forward, first, "cpu"))
    for _ in range(3):
        _take(batch.rows, batch.decode(fake_forward))
    joining = _rows(list(range(10, 24)))  # longer than the running rows' history: they get more padding
    _take(joining, batch.prefill(fake_forward, joining, "cpu"))
    assert len(batch.rows) == 3 and batch.accepts_new_rows
    for _ in range(2):
        _take(batch.rows, batch.decode(fake_forward))
    width = batch._mask.shape[1]  # noqa: SLF001
    batch.drop([2])  # the longest row leaves: the padding only it needed goes too
    assert batch._mask.shape[1] < width  # noqa: SLF001
    assert batch._cache.layers[0].keys.shape[2] == batch._mask.shape[1]  # noqa: SLF001
    for _ in range(2):
        _take(batch.rows, batch.decode(fake_forward))
    batch.drop([0])
    _take(batch.rows, batch.decode(fake_forward))
    assert [row.sequence.prompt for row in batch.rows] == [[9, 8, 7, 6, 5, 4, 3]]
    batch.drop([0])
    assert batch.rows == [] and batch.accepts_new_rows


def test_a_cache_that_is_not_plain_layers_takes_new_rows_only_between_waves() -> None:
    def sliding_forward(**inputs: Any) -> Any:
        output = fake_forward(**inputs)
        return types.SimpleNamespace(logits=output.logits, past_key_values=_Opaque(output.past_key_values))

    batch: batching.DecodeBatch[str] = batching.DecodeBatch(pad_id=0)
    rows = _rows([1, 2], [3, 4, 5])
    _take(rows, batch.prefill(sliding_forward, rows, "cpu"))
    assert not batch.accepts_new_rows  # mid-wave: joining would need to rebuild a cache it does not know
    batch.drop([0, 1])
    assert batch.accepts_new_rows


class _Opaque:
    """A cache of some other kind (e.g. sliding-window layers) that can still drop rows."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def batch_select_indices(self, indices: Any) -> None:
        self.inner.batch_select_indices(indices)
