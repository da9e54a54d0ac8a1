"""The transformers backend's sampler and per-request decoding state (`Sequence`).

Our own token loop rather than `generate()` + TextIteratorStreamer: every token is a point where
a cancelled request stops at once (no thread left generating for nobody), usage is counted
exactly, requests decoded together in one batch keep their own parameters, and each seed drives a
private torch.Generator, so requests sharing a batch, concurrent servers or tests cannot disturb
one another's sampling. Stop strings are applied by the server on the text stream; ending the
stream (cancel) is what stops generation. The forward passes themselves are `transformers_batch`.
"""

from __future__ import annotations

import time
from typing import Any

from llmserver_backends import base, token_logprobs, xgrammar_guide


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


def process(logits: Any, params: base.SamplingParams, generated: list[int], prompt: list[int]) -> Any:
    """The logits after logit_bias and the penalties, in vLLM's order: bias, then repetition
    (HF's rule over prompt and output: divide a positive logit, multiply a negative one), then
    OpenAI's frequency (times the count) and presence (once) penalties over the output."""
    import torch

    if not (params.logit_bias or generated or params.repetition_penalty != 1.0):
        return logits
    logits = logits.clone()
    if params.logit_bias:
        ids = torch.tensor(list(params.logit_bias), dtype=torch.long)
        logits[ids] += torch.tensor(list(params.logit_bias.values()), dtype=logits.dtype)
    if params.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(prompt) | set(generated)), dtype=torch.long)
        values = logits[seen]
        logits[seen] = torch.where(
            values > 0, values / params.repetition_penalty, values * params.repetition_penalty
        )
    if generated and (params.frequency_penalty or params.presence_penalty):
        counts = torch.bincount(torch.tensor(generated, dtype=torch.long), minlength=logits.shape[-1]).to(logits.dtype)
        logits -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0).to(logits.dtype)
    return logits


def sample(logits: Any, params: base.SamplingParams, generator: Any) -> int:
    """Greedy at temperature 0; otherwise temperature, then top_k, min_p and nucleus (top_p)
    filters (each keeps at least the likeliest token), then a draw from the private generator."""
    import torch

    if params.temperature <= 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    sorted_probs, order = torch.sort(probs, descending=True)
    keep = torch.ones_like(sorted_probs, dtype=torch.bool)
    if params.top_k > 0:
        keep[params.top_k :] = False
    if params.min_p > 0.0:
        keep &= sorted_probs >= params.min_p * sorted_probs[0]
    if params.top_p < 1.0:
        keep &= torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
    keep[0] = True
    if bool(keep.all()):
        return int(torch.multinomial(probs, 1, generator=generator))
    sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
    choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
    return int(order[choice])


class Sequence:
    """One request's decoding state: the tokens it generated, its private sampler and the text
    decoded so far. `advance` turns the model's logits for its next position into one Delta; the
    batch scheduler calls it once per forward pass, whatever else shares that pass."""

    def __init__(
        self,
        tokenizer: Any,
        prompt: list[int],
        params: base.SamplingParams,
        *,
        max_tokens: int,
        stop_ids: frozenset[int],
        seed: int,
        guide: xgrammar_guide.Guide | None = None,
    ) -> None:
        import torch

        self.prompt = prompt
        self.params = params
        self.max_tokens = max_tokens
        self.stop_ids = stop_ids
        self.guide = guide
        self.generated: list[int] = []
        self.finished = False
        self._generator = torch.Generator(device="cpu").manual_seed(seed)
        self._decoder = IncrementalDecoder(tokenizer)
        self._token_bytes = token_logprobs.hf_token_bytes(tokenizer) if params.logprobs is not None else None

    @property
    def last_token(self) -> int:
        """The token the next forward pass feeds for this sequence."""
        return self.generated[-1]

    def advance(self, raw: Any) -> base.Delta:
        """Samples the next token from `raw` (1-D float logits on the CPU) and returns its Delta;
        an end-of-generation token ("stop") or reaching max_tokens ("length") sets `finished`.
        `guide` (structured outputs) masks the tokens its grammar refuses before the draw."""
        params, n_prompt = self.params, len(self.prompt)
        processed = process(raw, params, self.generated, self.prompt)
        token = sample(processed if self.guide is None else self.guide.mask_torch(processed), params, self._generator)
        if self.guide is not None:
            self.guide.accept(token)
        now = time.perf_counter()
        if token in self.stop_ids:
            self.finished = True
            return base.Delta(self._decoder.flush(), n_prompt, len(self.generated), "stop", at=now)
        self.generated.append(token)
        text = self._decoder.add(token)
        logprobs = _logprobs(raw, token, params.logprobs, self._token_bytes)
        if len(self.generated) >= self.max_tokens:
            self.finished = True
            flushed = text + self._decoder.flush()
            return base.Delta(flushed, n_prompt, len(self.generated), "length", at=now, logprobs=logprobs)
        return base.Delta(text, n_prompt, len(self.generated), at=now, logprobs=logprobs)


def _logprobs(raw: Any, token: int, k: int | None, token_bytes: Any) -> tuple[base.TokenLogprob, ...]:
    if k is None:
        return ()
    return (token_logprobs.entry(token_logprobs.log_softmax(raw.numpy()), token, k, token_bytes),)
