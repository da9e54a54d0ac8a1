"""Drive blocking engine code from the event loop.

In-process engines (llama.cpp, transformers, mlx) generate tokens in a blocking loop. `stream`
runs such a generator in a worker thread and hands its items to the event loop as an async
iterator. Leaving the `async for` early (client gone, stop string found, timeout) sets a cancel
flag the worker checks between items, closes the generator *in the worker* and waits for it, so
the engine is idle again before the next request starts on it.

Give each engine one `single_worker()` executor: its calls then never overlap, which is what
engines with one context (llama.cpp) need.

Hand-off cost matters for fast engines (a tiny model makes a token every ~0.2 ms): the loop is
woken at once for the first item and the last, and otherwise at most every 2 ms, taking all items
queued by then in one turn. Items carry their own timestamps where latency is measured
(`base.Delta.at`), so coalescing does not skew metrics.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()
_COALESCE_S = 0.002


def single_worker(name: str) -> concurrent.futures.ThreadPoolExecutor:
    """An executor with one thread: engine calls submitted to it run one at a time, in order."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)


async def run(executor: concurrent.futures.Executor | None, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in `executor`, awaited. A cancelled caller does not interrupt `fn`, but the
    executor's single thread still serialises it with later calls."""
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)


class Cancelled(Exception):
    """Raised inside a worker by `check()` after the consumer went away."""


class CancelToken:
    """Shared between the event loop and the worker; engines may poll it in long steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the worker to stop after its current step."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once cancel() was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if cancel() was called."""
        if self._event.is_set():
            raise Cancelled()


class _Channel:
    """Worker -> event loop hand-off that wakes the loop only when the consumer is waiting, and
    then at most every _COALESCE_S unless the item is urgent (the end, a failure); the first item
    after a quiet spell always wakes it at once, a skipped wake-up is made good by a loop timer.

    A wake-up per item (call_soon_threadsafe each token) costs a self-pipe write, a loop turn and
    a GIL hand-over; measured on the tiny GGUF that was ~25% of llama.cpp's own token rate."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None
        self._woken = 0.0

    def put(self, item: Any, urgent: bool = False) -> None:
        """Worker side."""
        now = time.perf_counter()
        with self._lock:
            self._items.append(item)
            waiter = self._waiter
            if waiter is not None and (urgent or now - self._woken >= _COALESCE_S):
                self._waiter = None
                self._woken = now
            else:
                waiter = None
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed: nobody is listening
                self._loop.call_soon_threadsafe(_wake, waiter)

    async def get(self) -> Any:
        """Event-loop side. A timer bounds the delay of an item whose wake-up was coalesced."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(_COALESCE_S, self._flush, waiter)
            try:
                await waiter
            finally:
                timer.cancel()

    def _flush(self, waiter: asyncio.Future[None]) -> None:
        with self._lock:
            if not self._items or self._waiter is not waiter:
                return
            self._waiter = None
            self._woken = time.perf_counter()
        _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _pump(make: Callable[[CancelToken], Iterator[T]], token: CancelToken, channel: _Channel) -> None:
    """Worker side: iterate, forward each item (or the exception) to the loop, stop on cancel."""
    iterator: Iterator[T] | None = None
    try:
        if token.cancelled:  # the consumer left while this job waited for the worker
            return
        iterator = make(token)
        for item in iterator:
            if token.cancelled:
                break
            channel.put(item)
            if token.cancelled:
                break
    except Cancelled:
        pass
    except BaseException as exc:  # noqa: BLE001 - re-raised on the loop side
        channel.put(_Failure(exc), urgent=True)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
        channel.put(_DONE, urgent=True)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def stream(
    executor: concurrent.futures.Executor | None,
    make: Callable[[CancelToken], Iterator[T]],
) -> AsyncIterator[T]:
    """Iterate `make(token)` in `executor` and yield its items on the event loop.

    `make` runs in the worker too (so it may do blocking set-up such as tokenising); it gets the
    CancelToken so long steps inside one item can poll it. Exceptions raised in the worker are
    re-raised here. When the consumer stops early, the worker is cancelled and awaited before this
    generator finishes closing.
    """
    loop = asyncio.get_running_loop()
    channel = _Channel(loop)
    token = CancelToken()
    future = loop.run_in_executor(executor, _pump, make, token, channel)
    try:
        while True:
            item = await channel.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        token.cancel()
        # Wait for the worker even if we are being cancelled: the engine must be free before the
        # next request runs on it.
        await _join(future)


async def _join(future: asyncio.Future[None]) -> None:
    """Wait for the worker to finish even through cancellations, then re-raise the first one."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError()
