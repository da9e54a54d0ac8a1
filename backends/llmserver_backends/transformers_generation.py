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

from llmserver_backends import base, threads, token_logprobs, xgrammar_guide


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
    guide: xgrammar_guide.Guide | None = None,
) -> Iterator[base.Delta]:
    """Deltas for `prompt` until an end-of-generation token ("stop") or `max_tokens` ("length");
    `guide` (structured outputs) masks the tokens its grammar refuses before each draw."""
    import torch

    device = model.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    decoder = IncrementalDecoder(tokenizer)
    n_prompt = len(prompt)
    produced = 0
    generated: list[int] = []
    token_bytes = token_logprobs.hf_token_bytes(tokenizer) if params.logprobs is not None else None
    inputs = torch.tensor([prompt], device=device)
    past: Any = None
    with torch.inference_mode():
        while True:
            cancel.check()
            output = model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = output.past_key_values
            raw = output.logits[0, -1].float().cpu()
            processed = process(raw, params, generated, prompt)
            token = sample(processed if guide is None else guide.mask_torch(processed), params, generator)
            if guide is not None:
                guide.accept(token)
            if token in stop_ids:
                yield base.Delta(decoder.flush(), n_prompt, produced, "stop")
                return
            produced += 1
            generated.append(token)
            text = decoder.add(token)
            logprobs = _logprobs(raw, token, params.logprobs, token_bytes)
            if produced >= max_tokens:
                yield base.Delta(text + decoder.flush(), n_prompt, produced, "length", logprobs=logprobs)
                return
            yield base.Delta(text, n_prompt, produced, logprobs=logprobs)
            inputs = torch.tensor([[token]], device=device)


def _logprobs(raw: Any, token: int, k: int | None, token_bytes: Any) -> tuple[base.TokenLogprob, ...]:
    if k is None:
        return ()
    return (token_logprobs.entry(token_logprobs.log_softmax(raw.numpy()), token, k, token_bytes),)
