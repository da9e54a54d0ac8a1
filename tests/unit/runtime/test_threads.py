"""Blocking generators driven from the event loop: order, errors, cancellation joins the worker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from llmserver_backends import threads


async def test_items_arrive_in_order_from_the_worker_thread() -> None:
    executor = threads.single_worker("t")
    seen_threads: set[str] = set()

    def produce(_: threads.CancelToken) -> Iterator[int]:
        for i in range(50):
            seen_threads.add(threading.current_thread().name)
            yield i

    assert [i async for i in threads.stream(executor, produce)] == list(range(50))
    assert seen_threads and all(name.startswith("t") for name in seen_threads)
    executor.shutdown()


async def test_worker_exception_is_raised_in_the_consumer() -> None:
    def produce(_: threads.CancelToken) -> Iterator[int]:
        yield 1
        raise KeyError("engine broke")

    got: list[int] = []
    with pytest.raises(KeyError, match="engine broke"):
        async for item in threads.stream(None, produce):
            got.append(item)
    assert got == [1]


async def test_leaving_early_stops_the_worker_before_close_returns() -> None:
    executor = threads.single_worker("t")
    produced: list[int] = []
    closed = threading.Event()

    def produce(_: threads.CancelToken) -> Iterator[int]:
        try:
            for i in range(10_000):
                time.sleep(0.002)
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = threads.stream(executor, produce)
    async for item in stream:
        if item == 2:
            break
    await stream.aclose()
    assert closed.is_set(), "the blocking generator was not closed in the worker"
    count = len(produced)
    await asyncio.sleep(0.05)
    assert len(produced) == count < 50
    # The single worker is free again at once.
    started = time.perf_counter()
    assert await threads.run(executor, lambda: "free") == "free"
    assert time.perf_counter() - started < 1.0
    executor.shutdown()


async def test_cancelling_the_consumer_task_joins_the_worker() -> None:
    executor = threads.single_worker("t")
    running = threading.Event()
    finished = threading.Event()

    def produce(_: threads.CancelToken) -> Iterator[int]:
        try:
            while True:
                running.set()
                time.sleep(0.002)
                yield 0
        finally:
            finished.set()

    async def consume() -> None:
        async for _ in threads.stream(executor, produce):
            pass

    task = asyncio.create_task(consume())
    while not running.is_set():
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
    executor.shutdown()


async def test_cancel_token_lets_long_steps_stop() -> None:
    checks: list[bool] = []

    def produce(token: threads.CancelToken) -> Iterator[int]:
        yield 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # one long step that polls the token
            checks.append(token.cancelled)
            token.check()
            time.sleep(0.001)
        yield 1

    stream = threads.stream(None, produce)
    assert await anext(stream) == 0
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await stream.aclose()
    assert time.perf_counter() - started < 2.0
    assert checks and checks[-1] is True


async def test_an_item_after_a_burst_is_not_held_until_the_next_one() -> None:
    """Wake-ups are coalesced for fast engines; an item whose wake-up was skipped must still
    arrive within milliseconds even if the engine then stalls."""
    got_first, release = threading.Event(), threading.Event()
    arrived: list[float] = []

    def produce(_: threads.CancelToken) -> Iterator[float]:
        time.sleep(0.02)  # the consumer is waiting: this item wakes it
        yield time.perf_counter()
        got_first.wait(5)
        time.sleep(0.0003)  # the consumer is waiting again, well inside the coalescing window
        yield time.perf_counter()
        release.wait(5)  # the engine stalls
        yield time.perf_counter()

    stream = threads.stream(None, produce)
    async for produced in stream:
        arrived.append(time.perf_counter() - produced)
        got_first.set()
        if len(arrived) == 2:
            release.set()
    assert len(arrived) == 3
    assert max(arrived) < 1.0, arrived


async def test_first_item_after_a_pause_arrives_without_coalescing_delay() -> None:
    def produce(_: threads.CancelToken) -> Iterator[float]:
        for _ in range(3):
            time.sleep(0.02)
            yield time.perf_counter()

    delays = [time.perf_counter() - produced async for produced in threads.stream(None, produce)]
    assert len(delays) == 3 and all(d < 0.5 for d in delays)
