"""Continuous batching for the llama-cpp backend: one llama context, `n_slots` sequences.

One scheduler thread owns the context. Each step builds one `llama_batch`: the last sampled
token of every decoding sequence plus prompt chunks of sequences still reading their prompt, up
to n_batch tokens, then one `llama_decode` and one sampling call per sequence that has an
output. Requests join between steps (as soon as a slot and room in the KV cache are free) and
leave as soon as they end, are cancelled or fail, each with its own sampler, stop strings and
usage. Requests for different LoRA adapters never share a step: a step serves one adapter
(round robin over the adapters that have work) and sets it on the context.

The KV cache is one pool of n_ctx cells shared by the slots (llama.cpp's unified KV cache,
llama-server's layout when it picks its slot count itself): a request may use all of it, and
when concurrent requests together outgrow it, the youngest is preempted (its cells freed) and
resumes later by re-reading its prompt and what it generated, so nothing fails and nothing is
lost. A freed slot keeps its cells as a prefix cache: the next request whose prompt starts the
same way (same adapter) skips those tokens; the other idle cells are dropped when a request joins
(llama.cpp attends over the used range of a unified cache, so idle cells slow every sequence).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import itertools
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import llama_cpp
import numpy as np

from llmserver_backends import base, llama_cpp_slots

_COALESCE_S = 0.002  # the event loop is woken at most this often unless a delta is urgent


@dataclasses.dataclass(eq=False)
class _Slot:
    """A llama.cpp sequence id: the request on it, or the cells it left behind (a prefix cache)."""

    seq_id: int
    sequence: llama_cpp_slots.SequenceState | None = None
    cached: list[int] = dataclasses.field(default_factory=list)
    adapter: str | None = None
    last_used: int = 0

    def cells(self) -> int:
        return self.sequence.n_past if self.sequence is not None else len(self.cached)


class BatchScheduler:
    """The scheduler thread and the slots of one llama context (see the module docstring)."""

    def __init__(
        self, ctx: Any, n_slots: int, n_batch: int, n_vocab: int, adapters: Mapping[str, Any]
    ) -> None:
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._pool = int(llama_cpp.llama_n_ctx(ctx))
        self._n_batch = min(n_batch, int(llama_cpp.llama_n_batch(ctx)))  # llama.cpp caps it at n_ctx
        self._n_vocab = n_vocab
        self._adapters = dict(adapters)
        self._applied: str | None = None
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        batch = self._batch  # its arrays, read once: each attribute read builds a ctypes pointer
        self._arrays = (batch.token, batch.pos, batch.n_seq_id, batch.seq_id, batch.logits)
        self._slots = [_Slot(i) for i in range(n_slots)]
        self._inbox: collections.deque[llama_cpp_slots.Request] = collections.deque()
        self._waiting: collections.deque[llama_cpp_slots.SequenceState] = collections.deque()
        self._active: list[llama_cpp_slots.SequenceState] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._cancels = False  # a request was cancelled since the last scan (set after its event)
        self._clock = itertools.count(1)
        self._turn = 0
        self._dirty: dict[int, llama_cpp_slots.Outbox] = {}
        self._urgent = False
        self._last_wake = 0.0
        self.stats = base.BatchStats()  # counted by the scheduler thread; others read stats.snapshot()
        self._thread = threading.Thread(target=self._run, name="llama-cpp-batch", daemon=True)
        self._thread.start()

    @property
    def pool(self) -> int:
        """KV cells shared by the slots (the most one request may use)."""
        return self._pool

    @property
    def running(self) -> int:
        """Requests on a slot now (at most the slot count)."""
        return len(self._active)

    def submit(self, request: llama_cpp_slots.Request) -> None:
        """Queues a request; it joins the next step that has a slot and room for it."""
        with self._cond:
            if self._stopping:
                raise base.BackendUnavailable("the model is unloading")
            self._inbox.append(request)
            self._cond.notify()

    def cancel(self, request: llama_cpp_slots.Request) -> None:
        """Drops a request before its next step (its slot is free for the next one)."""
        request.cancelled.set()
        with self._cond:
            self._cancels = True
            self._cond.notify()

    def close(self) -> None:
        """Stops the thread (open requests fail as unavailable) and frees the batch."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    def _run(self) -> None:
        while True:
            requests: list[llama_cpp_slots.Request] = []
            # Busy with nothing new: no lock (a decode step is ~50 us on a tiny model, and every
            # microsecond of Python here is per generated token). deque and bool reads are atomic.
            if self._inbox or self._stopping or not (self._active or self._waiting):
                with self._cond:
                    while not (self._inbox or self._active or self._waiting or self._stopping):
                        self._flush(force=True)
                        self._cond.wait()
                    if self._stopping:
                        break
                    requests = list(self._inbox)
                    self._inbox.clear()
            try:
                for request in requests:
                    self._accept(request)
                if self._cancels:
                    self._cancels = False  # before the scan: a cancel during it is seen next step
                    self._drop_cancelled()
                self._admit()
                if self._active:
                    self._step()
            except Exception as error:  # noqa: BLE001 - a bug here must not hang every client
                for sequence in [*self._active, *self._waiting]:
                    self._end(sequence, base.BackendError(f"the llama-cpp scheduler failed: {error!r}"), False)
            self._flush()
        for sequence in [*self._active, *self._waiting]:
            self._end(sequence, base.BackendUnavailable("the model was unloaded"))
        for request in self._inbox:
            self._close(request.outbox, base.BackendUnavailable("the model was unloaded"))
        self._flush(force=True)

    def _accept(self, request: llama_cpp_slots.Request) -> None:
        """Tokenizes and checks a new request; it waits for a slot, or its stream ends here."""
        if request.cancelled.is_set():
            self._close(request.outbox, None)
            return
        try:
            sequence = request.prepare(request.outbox, request.cancelled)
        except Exception as error:  # noqa: BLE001 - refused (too long, bad schema...): its stream says why
            self._close(request.outbox, error)
            return
        self._waiting.append(sequence)

    def _close(self, outbox: llama_cpp_slots.Outbox, error: BaseException | None) -> None:
        if error is not None:
            outbox.put(error)
        outbox.put(None)
        self._mark(outbox, urgent=True)

    def _drop_cancelled(self) -> None:
        for sequence in [s for s in self._active if s.cancelled.is_set()]:
            self._end(sequence, None)
        if any(s.cancelled.is_set() for s in self._waiting):
            for sequence in [s for s in self._waiting if s.cancelled.is_set()]:
                self._end(sequence, None)
            self._waiting = collections.deque(s for s in self._waiting if not s.cancelled.is_set())

    def _admit(self) -> None:
        """Moves waiting requests onto free slots while the KV pool has room for their prompts,
        reusing the longest cached prefix a free slot holds for the same adapter."""
        while self._waiting:
            free = [slot for slot in self._slots if slot.sequence is None]
            if not free:
                return
            sequence = self._waiting[0]
            slot, reuse = max(
                ((slot, self._reusable(slot, sequence)) for slot in free),
                key=lambda pair: (pair[1], -pair[0].last_used),
            )
            need = len(sequence.tokens) - reuse + len(self._active)  # its prompt, the others' next tokens
            room = self._pool - sum(s.cells() for s in self._slots) + len(slot.cached) - reuse
            # Other idle prefixes go: cells in the unified cache widen every sequence's attention
            # span (llama.cpp attends over the used range, masking other sequences' cells).
            for idle in (s for s in free if s is not slot and s.cached):
                room += len(idle.cached)
                self._forget(idle)
            if need > room and self._active:
                return  # wait for a running request to end
            self._waiting.popleft()
            llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, reuse, -1)
            slot.cached, slot.sequence, slot.adapter = [], sequence, sequence.adapter
            sequence.slot, sequence.n_past = slot.seq_id, reuse
            self._active.append(sequence)

    @staticmethod
    def _reusable(slot: _Slot, sequence: llama_cpp_slots.SequenceState) -> int:
        if slot.adapter != sequence.adapter or not slot.cached:
            return 0
        common = 0
        for cached, token in zip(slot.cached, sequence.tokens, strict=False):
            if cached != token:
                break
            common += 1
        return min(common, len(sequence.tokens) - 1)  # at least one token is decoded for its logits

    def _forget(self, slot: _Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        slot.cached = []

    def _step(self) -> None:
        """One decode of one adapter's sequences, then one sampling call per finished row."""
        active = self._active
        self._turn += 1
        if len(active) == 1:  # one request: nothing to choose or order (the common case when idle-ish)
            group = active
            self._apply(active[0].adapter)
        else:
            adapters = list(dict.fromkeys(s.adapter for s in active))
            adapter = adapters[self._turn % len(adapters)]
            self._apply(adapter)
            group = [s for s in active if s.adapter == adapter]
            shift = self._turn % len(group)  # who goes first rotates, so long prompts take turns too
            group = sorted(group[shift:] + group[:shift], key=lambda s: s.pending > 1)
        batch, budget, n = self._batch, self._n_batch, 0
        token_ids, positions, n_seq_ids, seq_ids, wants_logits = self._arrays
        planned: list[tuple[llama_cpp_slots.SequenceState, int]] = []
        outputs: list[tuple[llama_cpp_slots.SequenceState, int]] = []
        for sequence in group:
            pending = sequence.pending
            take = min(pending, budget - n)
            if take <= 0:
                break
            tokens, n_past, seq_id = sequence.tokens, sequence.n_past, sequence.slot
            for j in range(take):
                token_ids[n + j] = tokens[n_past + j]
                positions[n + j] = n_past + j
                n_seq_ids[n + j] = 1
                seq_ids[n + j][0] = seq_id
                wants_logits[n + j] = False
            n += take
            planned.append((sequence, take))
            if take == pending:
                wants_logits[n - 1] = True
                outputs.append((sequence, n - 1))
        batch.n_tokens = n
        if n > len(planned):
            self._flush(force=True)  # a prompt chunk makes this a long step: deliver what is ready
        result = llama_cpp.llama_decode(self._ctx, batch)
        if result == 1:
            self._preempt()
            return
        if result != 0:
            for sequence, _ in planned:
                self._end(sequence, base.BackendError(f"llama_decode failed ({result})"), keep_cells=False)
            return
        for sequence, take in planned:
            sequence.n_past += take
        self.stats.record_decode(len(planned))
        for sequence, index in outputs:
            self._sample(sequence, index)

    def _sample(self, sequence: llama_cpp_slots.SequenceState, index: int) -> None:
        logits = None
        if sequence.logprobs is not None:
            row = llama_cpp.llama_get_logits_ith(self._ctx, index)
            logits = np.ctypeslib.as_array(ctypes.cast(row, ctypes.POINTER(ctypes.c_float)), shape=(self._n_vocab,))
        first = sequence.produced == 0
        try:
            finished = sequence.advance(self._ctx, index, logits)
        except Exception as error:  # noqa: BLE001 - this request fails, the others go on
            self._end(sequence, error)
            return
        self._mark(sequence.outbox, urgent=first)
        if finished:
            self._end(sequence, None)

    def _apply(self, adapter: str | None) -> None:
        if adapter == self._applied:
            return
        if adapter is None:
            llama_cpp.llama_set_adapters_lora(self._ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[adapter])
            scales = (ctypes.c_float * 1)(1.0)
            llama_cpp.llama_set_adapters_lora(self._ctx, adapters, 1, scales)
        self._applied = adapter

    def _preempt(self) -> None:
        """The KV pool is full: idle slots' cached prefixes go first; then the youngest request
        gives its cells back and waits to resume."""
        idle = [slot for slot in self._slots if slot.sequence is None and slot.cached]
        if idle:
            for slot in idle:
                self._forget(slot)
            return
        victim = self._active[-1]
        if len(self._active) == 1:
            self._end(victim, base.ContextLengthExceeded("the request does not fit the KV cache"), keep_cells=False)
            return
        slot = self._slots[victim.slot] if victim.slot is not None else None
        self._active.remove(victim)
        if slot is not None:
            self._forget(slot)
            slot.sequence = None
        victim.slot, victim.n_past = None, 0
        self._waiting.appendleft(victim)

    def _end(
        self, sequence: llama_cpp_slots.SequenceState, error: BaseException | None, keep_cells: bool = True
    ) -> None:
        """Takes a request off its slot (its cells stay as a prefix cache) and ends its stream."""
        if sequence in self._active:
            self._active.remove(sequence)
        if sequence.slot is not None:
            slot = self._slots[sequence.slot]
            slot.sequence, slot.last_used = None, next(self._clock)
            slot.cached = sequence.tokens[: sequence.n_past] if keep_cells else []
            if not keep_cells:
                llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
            sequence.slot = None
        sequence.sampler.close()
        self._close(sequence.outbox, error)

    def _mark(self, outbox: llama_cpp_slots.Outbox, urgent: bool) -> None:
        self._dirty[id(outbox)] = outbox
        self._urgent = self._urgent or urgent

    def _flush(self, force: bool = False) -> None:
        """Wakes the event loop for the outboxes that got items, at most every _COALESCE_S unless
        something urgent (a first token, an end) is among them."""
        if not self._dirty:
            return
        now = time.perf_counter()
        if not (force or self._urgent or now - self._last_wake >= _COALESCE_S):
            return
        by_loop: dict[int, list[llama_cpp_slots.Outbox]] = {}
        for outbox in self._dirty.values():
            by_loop.setdefault(id(outbox.loop), []).append(outbox)
        for outboxes in by_loop.values():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is listening
                outboxes[0].loop.call_soon_threadsafe(llama_cpp_slots.wake_all, outboxes)
        self._dirty.clear()
        self._urgent = False
        self._last_wake = now


async def drain(scheduler: BatchScheduler, request: llama_cpp_slots.Request) -> AsyncIterator[base.Delta]:
    """Submits `request` and yields its deltas; leaving early cancels it (freeing its slot)."""
    scheduler.submit(request)
    try:
        while True:
            item = await request.outbox.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        scheduler.cancel(request)

