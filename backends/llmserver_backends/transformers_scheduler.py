"""Continuous batching for the transformers backend: concurrent requests share forward passes.

One model thread (the backend's single-worker executor) runs `_turn` while there is work, and
returns the thread when idle. Each turn it runs queued model calls (embeddings, rerank, adapter
loads: never beside a forward pass), admits waiting requests up to `max_batch_size` running rows,
then steps every adapter group once: a decode pass over the group's running rows and, if requests
joined, one padded prefill pass for them. Groups are keyed by adapter, so requests for different
adapters never share a forward pass, and stepping every group each turn keeps one adapter's
traffic from starving another's. Each request keeps its own sampler, stop tokens, max_tokens,
grammar and usage (`transformers_generation.Sequence`); a failure in one request's sampling ends
only that request, a failing forward pass ends its group.

Deltas reach each request's event loop through an outbox; the turn wakes each loop once, however
many rows produced tokens (a wake-up per token is a measurable share of a tiny model's step).
A consumer that leaves early marks its job cancelled and waits until the model thread has dropped
its row, so a slot it held is free again when `aclose()` returns.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from llmserver_backends import base
from llmserver_backends import transformers_adapters as adapters
from llmserver_backends import transformers_batch as batching
from llmserver_backends import transformers_generation as generation

_DONE = object()


@dataclasses.dataclass(frozen=True)
class ModelHandle:
    """What the scheduler needs of the loaded model."""

    adapters: adapters.AdapterSet
    pad_id: int
    device: Any
    forward_kwargs: dict[str, Any]  # extra kwargs for prefill passes (logits_to_keep)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Outbox:
    """One request's deltas on their way from the model thread to its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> asyncio.Future[None] | None:
        """Model-thread side; returns the consumer's waiter to wake, if it is waiting."""
        with self._lock:
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        return waiter

    async def get(self) -> Any:
        """Event-loop side."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                waiter = self._waiter = self.loop.create_future()
            await waiter


@dataclasses.dataclass(eq=False)
class _Job:
    start: Callable[[], generation.Sequence]  # runs in the model thread: tokenise, check, build
    adapter: str | None
    outbox: _Outbox
    released: asyncio.Future[None]  # set once the model thread let go of the job
    cancelled: bool = False


class Scheduler:
    """Runs generation requests in batches of up to `max_batch_size` rows on the model thread."""

    def __init__(self, executor: concurrent.futures.Executor, max_batch_size: int) -> None:
        self.max_batch_size = max_batch_size
        self._executor = executor
        self._handle: ModelHandle | None = None
        self._lock = threading.Lock()  # guards _waiting, _calls and _running
        self._waiting: collections.deque[_Job] = collections.deque()
        self._calls: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = collections.deque()
        self._running = False
        self._batches: dict[str | None, batching.DecodeBatch[_Job]] = {}  # model thread only
        self._wakeups: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        self._stats = base.BatchStats()

    @property
    def stats(self) -> base.BatchStats:
        """A copy of the counters so far."""
        return self._stats.snapshot()

    def attach(self, handle: ModelHandle | None) -> None:
        """Sets (None: clears) the model the passes run on; call from the model thread."""
        self._handle = handle

    # -- event-loop side ------------------------------------------------------------------------

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the model thread between forward passes, awaited."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._ensure_running()  # first: nothing is queued if the backend was unloaded
            self._calls.append((lambda: fn(*args), future))
        return await asyncio.wrap_future(future)

    async def stream(self, start: Callable[[], generation.Sequence], adapter: str | None) -> AsyncIterator[base.Delta]:
        """The deltas of one request; `start` builds its Sequence on the model thread (errors it
        raises, such as a prompt over the context length, end this stream only)."""
        loop = asyncio.get_running_loop()
        job = _Job(start, adapter, _Outbox(loop), loop.create_future())
        with self._lock:
            self._ensure_running()
            self._waiting.append(job)
        ended = False
        try:
            while True:
                item = await job.outbox.get()
                if item is _DONE:
                    ended = True
                    return
                if isinstance(item, _Failure):
                    ended = True
                    raise item.error
                yield item
        finally:
            if not ended:
                job.cancelled = True
                with self._lock:
                    waiting = job in self._waiting
                    if waiting:
                        self._waiting.remove(job)
                if not waiting:
                    await _join(job.released)

    def _ensure_running(self) -> None:
        if not self._running:
            self._executor.submit(self._run)  # raises once the backend unloaded: stays not running
            self._running = True

    # -- model-thread side ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._turn():
                self._deliver()
        except BaseException as error:  # noqa: BLE001 - a bug must not leave consumers waiting forever
            with self._lock:
                jobs = [row.job for b in self._batches.values() for row in b.rows] + list(self._waiting)
                self._waiting.clear()
                self._running = False
            self._batches.clear()
            for job in jobs:
                self._finish(job, _Failure(error))
        self._deliver()

    def _turn(self) -> bool:
        with self._lock:
            calls = list(self._calls)
            self._calls.clear()
            admitted = self._admit()
            if not calls and not admitted and not any(b.rows for b in self._batches.values()):
                self._running = False
                return False
        for run, future in calls:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(run())
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    future.set_exception(error)
        joining: dict[str | None, list[batching.Row[_Job]]] = collections.defaultdict(list)
        for job in admitted:
            if job.cancelled:
                self._release(job)
                continue
            try:
                joining[job.adapter].append(batching.Row(job, job.start()))
            except Exception as error:  # noqa: BLE001 - this request's own failure
                self._finish(job, _Failure(error))
        for adapter in list(self._batches.keys() | joining.keys()):
            self._step(adapter, joining.get(adapter, []))
        return True

    def _admit(self) -> list[_Job]:
        """Waiting jobs that fit now, oldest first (under the lock). A group whose cache cannot
        take rows mid-wave leaves its jobs waiting without holding up other groups."""
        running = sum(len(b.rows) for b in self._batches.values())
        admitted: list[_Job] = []
        for job in list(self._waiting):
            if running + len(admitted) >= self.max_batch_size:
                break
            group = self._batches.get(job.adapter)
            if group is None or group.accepts_new_rows:
                self._waiting.remove(job)
                admitted.append(job)
        return admitted

    def _step(self, adapter: str | None, joining: list[batching.Row[_Job]]) -> None:
        import torch

        handle = self._handle
        group = self._batches.setdefault(adapter, batching.DecodeBatch(handle.pad_id if handle else 0))
        self._drop(group, [i for i, row in enumerate(group.rows) if row.job.cancelled])
        try:
            if handle is None:
                raise base.BackendUnavailable("the model is not loaded")
            with handle.adapters.active(adapter) as model, torch.inference_mode():
                if group.rows:
                    logits = group.decode(model)
                    self._count_decode(len(group.rows))
                    self._advance(group.rows, logits)
                if joining:
                    forward = _with_kwargs(model, handle.forward_kwargs)
                    logits = group.prefill(forward, joining, handle.device)
                    self._stats.prefill_passes += 1
                    self._advance(joining, logits)
        except Exception as error:  # noqa: BLE001 - the pass failed: every request in it ends
            failed = [row.job for row in group.rows] + [row.job for row in joining if row not in group.rows]
            self._batches.pop(adapter, None)
            for job in failed:
                self._finish(job, _Failure(error))
            return
        self._drop(group, [i for i, row in enumerate(group.rows) if row.sequence.finished or row.job.cancelled])
        if not group.rows:
            self._batches.pop(adapter, None)

    def _count_decode(self, rows: int) -> None:
        self._stats.record_decode(rows)

    def _advance(self, rows: list[batching.Row[_Job]], logits: Any) -> None:
        """Row i of `logits` is the next-token distribution of `rows[i]`."""
        for index, row in enumerate(rows):
            if row.job.cancelled:
                continue
            try:
                delta = row.sequence.advance(logits[index])
            except Exception as error:  # noqa: BLE001 - e.g. a grammar refusing: this request only
                row.sequence.finished = True
                self._finish(row.job, _Failure(error))
                continue
            self._post(row.job, delta)
            if row.sequence.finished:
                self._finish(row.job, _DONE)

    def _drop(self, group: batching.DecodeBatch[_Job], indices: list[int]) -> None:
        for index in indices:
            if group.rows[index].job.cancelled:
                self._release(group.rows[index].job)
        group.drop(indices)

    def _finish(self, job: _Job, last: Any) -> None:
        self._post(job, last)
        self._release(job)

    def _post(self, job: _Job, item: Any) -> None:
        waiter = job.outbox.put(item)
        if waiter is not None:
            self._wakeups.setdefault(job.outbox.loop, []).append(waiter)

    def _release(self, job: _Job) -> None:
        self._wakeups.setdefault(job.outbox.loop, []).append(job.released)

    def _deliver(self) -> None:
        """One wake-up per event loop for everything this turn produced."""
        wakeups, self._wakeups = self._wakeups, {}
        for loop, futures in wakeups.items():
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening
                loop.call_soon_threadsafe(_wake_all, futures)


def _with_kwargs(model: Any, kwargs: dict[str, Any]) -> Callable[..., Any]:
    if not kwargs:
        return model
    return lambda **inputs: model(**inputs, **kwargs)


def _wake_all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


async def _join(released: asyncio.Future[None]) -> None:
    """Waits until the model thread dropped the job, even through cancellation (re-raised after)."""
    cancelled = False
    while not released.done():
        try:
            await asyncio.shield(released)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError()
