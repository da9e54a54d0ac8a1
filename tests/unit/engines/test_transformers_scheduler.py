"""The transformers batch scheduler with a fake model: it never runs more rows than max_batch_size,
keeps adapter groups in separate passes, answers each request as it would alone, frees a
cancelled request's row at once and lets one request's failure end only that request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from llmserver_backends import base, threads
from llmserver_backends import transformers_scheduler as scheduling
from tests.unit.engines.test_transformers_batch import _next_token, fake_forward


class FakeAdapters:
    """Records each forward pass: the adapter it ran with and its rows."""

    def __init__(self) -> None:
        self.passes: list[tuple[str | None, int]] = []

    @contextlib.contextmanager
    def active(self, name: str | None) -> Iterator[Any]:
        def forward(**inputs: Any) -> Any:
            self.passes.append((name, int(inputs["input_ids"].shape[0])))
            return fake_forward(**inputs)

        yield forward


class FakeSequence:
    """Greedy over the fake model for `steps` tokens; the adapter name shifts its prompt so that
    requests of different adapters expect different tokens."""

    def __init__(self, prompt: list[int], steps: int) -> None:
        self.prompt, self.steps = prompt, steps
        self.generated: list[int] = []
        self.finished = False

    @property
    def last_token(self) -> int:
        return self.generated[-1]

    def advance(self, raw: Any) -> base.Delta:
        token = int(raw.argmax())
        assert token == _next_token(self.prompt + self.generated)
        self.generated.append(token)
        self.finished = len(self.generated) >= self.steps
        return base.Delta(f"{token},", len(self.prompt), len(self.generated), "length" if self.finished else None)


def _expected(prompt: list[int], steps: int) -> str:
    tokens = list(prompt)
    for _ in range(steps):
        tokens.append(_next_token(tokens))
    return "".join(f"{t}," for t in tokens[len(prompt) :])


@pytest.fixture
def fake() -> Iterator[tuple[scheduling.Scheduler, FakeAdapters]]:
    executor = threads.single_worker("fake-model")
    scheduler = scheduling.Scheduler(executor, max_batch_size=3)
    adapters = FakeAdapters()
    handle = scheduling.ModelHandle(adapters, pad_id=0, device="cpu", forward_kwargs={})  # type: ignore[arg-type]
    scheduler.attach(handle)
    yield scheduler, adapters
    executor.shutdown(wait=True)


async def _answer(scheduler: scheduling.Scheduler, prompt: list[int], steps: int, adapter: str | None = None) -> str:
    stream = scheduler.stream(lambda: FakeSequence(prompt, steps), adapter)  # type: ignore[arg-type,return-value]
    return "".join([delta.text async for delta in stream])


def test_batches_hold_at_most_max_rows_and_one_adapter(fake) -> None:
    scheduler, adapters = fake
    requests = [([i + 1] * (i + 2), 4 + i, ("x" if i in (3, 5, 6) else None)) for i in range(7)]

    async def run() -> list[str]:
        return list(await asyncio.gather(*(_answer(scheduler, p, n, a) for p, n, a in requests)))

    assert asyncio.run(run()) == [_expected(p, n) for p, n, _ in requests]
    stats = scheduler.stats
    assert stats.largest_batch == 3 and max(rows for _, rows in adapters.passes) == 3  # the first three
    assert {name for name, _ in adapters.passes} == {"x", None}
    assert stats.decode_passes + stats.prefill_passes == len(adapters.passes)
    assert stats.rows_decoded == sum(n - 1 for _, n, _ in requests)  # the first token comes from the prefill


def test_cancelled_request_frees_its_row(fake) -> None:
    scheduler, _ = fake
    scheduler.max_batch_size = 1

    async def run() -> tuple[str, int]:
        stream = scheduler.stream(lambda: FakeSequence([1, 2], 10_000), None)  # type: ignore[arg-type,return-value]
        await anext(stream)
        await anext(stream)
        await stream.aclose()
        passes = scheduler.stats.decode_passes
        return await asyncio.wait_for(_answer(scheduler, [3], 3), 10), passes

    answer, passes = asyncio.run(run())
    assert answer == _expected([3], 3) and passes < 100


def test_a_failing_request_ends_alone_and_calls_run_between_passes(fake) -> None:
    scheduler, _ = fake

    def broken() -> FakeSequence:
        raise base.ContextLengthExceeded("too long")

    async def run() -> list[Any]:
        failing = scheduler.stream(broken, None)  # type: ignore[arg-type]
        return list(
            await asyncio.gather(
                _answer(scheduler, [4, 5], 6), failing.__anext__(), scheduler.call(lambda x: x * 2, 21),
                return_exceptions=True,
            )
        )  # fmt: skip

    answer, failure, called = asyncio.run(run())
    assert answer == _expected([4, 5], 6)
    assert isinstance(failure, base.ContextLengthExceeded)
    assert called == 42


def test_after_unload_requests_fail_at_once_instead_of_waiting() -> None:
    executor = threads.single_worker("unloaded")
    scheduler = scheduling.Scheduler(executor, max_batch_size=2)
    executor.shutdown()
    with pytest.raises(RuntimeError):
        asyncio.run(asyncio.wait_for(_answer(scheduler, [1], 2), 10))
    with pytest.raises(RuntimeError):
        asyncio.run(asyncio.wait_for(scheduler.call(int), 10))
