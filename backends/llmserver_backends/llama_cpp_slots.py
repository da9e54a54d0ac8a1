"""Per-sequence state of the llama-cpp batch scheduler: what one request carries between decode
steps (its tokens, its own sampler chain, its stop matcher, its outbox to the event loop).

Each sequence owns a llama.cpp sampler chain built from its SamplingParams (its own seed, grammar
and penalty history), so a request samples the same tokens whatever else shares its decode
batch. logit_bias is llama.cpp's native sampler, first in the chain (it sees raw logits);
logprobs read the sequence's own raw logits row of the batch (`llama_get_logits_ith`).
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import llama_cpp

from llmserver_backends import base, llama_cpp_grammar, stops, token_logprobs

# Tokens of history the repetition penalties look at (llama_cpp.Llama's last_n_tokens_size default;
# the `last_n_tokens_size=N` extra arg sets it).
PENALTY_LAST_N = 64


class SequenceSampler:
    """One request's llama.cpp sampler chain, in llama_cpp.Llama's order: logit bias, penalties,
    grammar, then greedy (temperature 0) or top-k / top-p / min-p / temperature / seeded draw."""

    def __init__(
        self, model: Any, n_vocab: int, params: base.SamplingParams, penalty_last_n: int = PENALTY_LAST_N
    ) -> None:
        grammar = llama_cpp_grammar.grammar(params.constraint)  # first: it may refuse the request
        self._chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda sampler: llama_cpp.llama_sampler_chain_add(self._chain, sampler)  # noqa: E731
        if params.logit_bias:
            bias = (llama_cpp.llama_logit_bias * len(params.logit_bias))()
            for i, (token, value) in enumerate(params.logit_bias.items()):
                bias[i].token, bias[i].bias = int(token), float(value)
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(params.logit_bias), bias))
        add(
            llama_cpp.llama_sampler_init_penalties(
                n_vocab, penalty_last_n, params.repetition_penalty, params.frequency_penalty, params.presence_penalty
            )
        )
        if grammar is not None:
            add(
                llama_cpp.llama_sampler_init_grammar(
                    model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
                )
            )
        if params.temperature == 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            # llama.cpp seeds are unsigned 32-bit: fold any 64-bit seed into that range.
            seed = params.seed & 0xFFFFFFFF if params.seed is not None else random.getrandbits(31)
            add(llama_cpp.llama_sampler_init_top_k(params.top_k))
            add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(params.temperature))
            add(llama_cpp.llama_sampler_init_dist(seed))

    def sample(self, ctx: Any, index: int) -> int:
        """Samples (and accepts) the next token from row `index` of the last decode's outputs."""
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


class TokenTable:
    """One model's token bytes and end-of-generation flags, asked of llama.cpp once per token id
    (then a dict lookup): per generated token, `Llama.detokenize` and the ctypes call were the
    scheduler thread's costliest Python, and each ctypes call releases the GIL to the event loop."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._bytes: dict[int, bytes] = {}
        self._end: dict[int, bool] = {}

    def token_bytes(self, token: int) -> bytes:
        piece = self._bytes.get(token)
        if piece is None:
            piece = self._bytes[token] = self._llm.detokenize([token])
        return piece

    def is_end(self, token: int) -> bool:
        end = self._end.get(token)
        if end is None:
            end = self._end[token] = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
        return end


class Outbox:
    """Scheduler thread -> event loop hand-off of one request's deltas. The scheduler appends and
    later wakes the loop once for every outbox that got items (`wake_all`), so a decode step costs
    at most one loop wake-up whatever the number of sequences in it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: collections.deque[base.Delta | BaseException | None] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._started = False

    def put(self, item: base.Delta | BaseException | None) -> None:
        """Scheduler side: a delta, the failure that ends the stream, or None (the end)."""
        self._items.append(item)

    def wake(self) -> None:
        """Event-loop side (through call_soon_threadsafe)."""
        waiter = self._waiter
        if waiter is not None and self._items and not waiter.done():
            self._waiter = None
            waiter.set_result(None)

    async def get(self) -> base.Delta | BaseException | None:
        """Event-loop side: the next item, waiting for the scheduler's wake-up when there is none.
        Deltas queued together after the first come as one (text and logprobs joined, the last
        one's counts and time): the event loop's work per delta (server layers, metrics) then
        runs once per wake-up, not once per token, and holds the GIL the scheduler needs less."""
        while not self._items:
            self._waiter = self.loop.create_future()
            await self._waiter
        item = self._items.popleft()
        if not self._started:
            self._started = True  # the first delta alone: its time is the time to first token
            return item
        items = self._items
        if not (items and isinstance(item, base.Delta) and item.finish_reason is None):
            return item
        run = [item]
        while items and isinstance(items[0], base.Delta) and run[-1].finish_reason is None:
            run.append(items.popleft())
        return merged(run) if len(run) > 1 else item


@dataclasses.dataclass(eq=False)
class Request:
    """A request before the scheduler thread tokenizes it (`prepare`, run there between decode
    steps: no thread hop of its own); failures of `prepare` end the stream through `outbox`."""

    prepare: Callable[[Outbox, threading.Event], SequenceState]
    outbox: Outbox
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)


def merged(run: Sequence[base.Delta]) -> base.Delta:
    """Consecutive deltas of one sequence as one (counts are cumulative: the last has them)."""
    logprobs = tuple(entry for delta in run for entry in delta.logprobs)
    return dataclasses.replace(run[-1], text="".join(delta.text for delta in run), logprobs=logprobs)


def wake_all(outboxes: Sequence[Outbox]) -> None:
    """Wakes every outbox (run on the event loop)."""
    for outbox in outboxes:
        outbox.wake()


@dataclasses.dataclass(eq=False)
class SequenceState:
    """One request in the scheduler: `tokens` is prompt plus generated tokens, `n_past` how many
    of them are in the KV cache; the tokens past `n_past` are decoded next (the prompt, or the
    last sampled token, or all of them again after a preemption)."""

    tokens: list[int]
    n_prompt: int
    max_tokens: int
    adapter: str | None
    sampler: SequenceSampler
    outbox: Outbox
    token_bytes: Callable[[int], bytes]
    is_end: Callable[[int], bool]
    logprobs: int | None = None
    stop: stops.StopMatcher = dataclasses.field(default_factory=lambda: stops.StopMatcher(()))
    n_past: int = 0
    produced: int = 0
    slot: int | None = None
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    _decoder: codecs.IncrementalDecoder = dataclasses.field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    @property
    def pending(self) -> int:
        """Tokens waiting to be decoded into the KV cache."""
        return len(self.tokens) - self.n_past

    def advance(self, ctx: Any, index: int, logits: Any) -> bool:
        """Samples the next token from output row `index` (`logits`: that raw row, when logprobs
        were asked for), emits its delta; True when the sequence finished."""
        token = self.sampler.sample(ctx, index)
        now = time.perf_counter()
        if self.is_end(token):
            self.outbox.put(self._delta(self.stop.flush() + self._decoder.decode(b"", final=True), "stop", now))
            return True
        self.produced += 1
        self.tokens.append(token)
        entries: tuple[base.TokenLogprob, ...] = ()
        if self.logprobs is not None and logits is not None:
            row = token_logprobs.log_softmax(logits)
            entries = (token_logprobs.entry(row, token, self.logprobs, self.token_bytes),)
        text, stopped = self.stop.feed(self._decoder.decode(self.token_bytes(token)))
        if stopped:
            self.outbox.put(self._delta(text, "stop", now, entries))
            return True
        if self.produced >= self.max_tokens:
            tail = self.stop.flush() + self._decoder.decode(b"", final=True)
            self.outbox.put(self._delta(text + tail, "length", now, entries))
            return True
        self.outbox.put(self._delta(text, None, now, entries))
        return False

    def _delta(
        self, text: str, finish: str | None, at: float, logprobs: tuple[base.TokenLogprob, ...] = ()
    ) -> base.Delta:
        return base.Delta(text, self.n_prompt, self.produced, finish, at, logprobs)
