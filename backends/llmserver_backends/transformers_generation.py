"""The transformers backend's token loop: one forward per token with the KV cache, our own sampler.

A hand-written loop rather than `generate()` + TextIteratorStreamer: every token is a point where
a cancelled request stops at once (no thread left generating for nobody), usage is counted
exactly, and the seed drives a private torch.Generator, so concurrent servers or tests cannot
disturb one another's sampling. Stop strings are applied by the server on the text stream; ending
the stream here (cancel) is what stops generation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmserver_backends import base, threads


class IncrementalDecoder:
    """Turns a growing token list into text increments without splitting UTF-8 characters.

    Decodes a short window (the previous step's tokens plus the new ones) and emits only what is
    new, holding back text that ends in U+FFFD: a byte-level BPE token may carry half a character.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._tokens: list[int] = []
        self._prefix = 0
        self._read = 0

    def _decode(self, tokens: list[int]) -> str:
        return self._tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def add(self, token: int) -> str:
        """Text that became final with `token`."""
        self._tokens.append(token)
        before = self._decode(self._tokens[self._prefix : self._read])
        after = self._decode(self._tokens[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._tokens)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character decodes as U+FFFD)."""
        before = self._decode(self._tokens[self._prefix : self._read])
        after = self._decode(self._tokens[self._prefix :])
        self._prefix = self._read = len(self._tokens)
        return after[len(before) :]


def sample(logits: Any, params: base.SamplingParams, generator: Any) -> int:
    """Greedy at temperature 0; otherwise temperature + nucleus (top_p) sampling."""
    import torch

    if params.temperature <= 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p  # always keeps the top token
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


def generate(
    model: Any,
    tokenizer: Any,
    prompt: list[int],
    params: base.SamplingParams,
    *,
    max_tokens: int,
    stop_ids: frozenset[int],
    seed: int,
    cancel: threads.CancelToken,
) -> Iterator[base.Delta]:
    """Deltas for `prompt` until an end-of-generation token ("stop") or `max_tokens` ("length")."""
    import torch

    device = model.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    decoder = IncrementalDecoder(tokenizer)
    n_prompt = len(prompt)
    produced = 0
    inputs = torch.tensor([prompt], device=device)
    past: Any = None
    with torch.inference_mode():
        while True:
            cancel.check()
            output = model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = output.past_key_values
            token = sample(output.logits[0, -1].float().cpu(), params, generator)
            if token in stop_ids:
                yield base.Delta(decoder.flush(), n_prompt, produced, "stop")
                return
            produced += 1
            text = decoder.add(token)
            if produced >= max_tokens:
                yield base.Delta(text + decoder.flush(), n_prompt, produced, "length")
                return
            yield base.Delta(text, n_prompt, produced)
            inputs = torch.tensor([[token]], device=device)
