"""The llama-cpp scheduler's outbox joins the deltas queued between two event-loop wake-ups."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("llama_cpp")

from llmserver_backends import base, llama_cpp_slots  # noqa: E402


def _delta(text: str, n: int, finish: str | None = None, logprobs: tuple[base.TokenLogprob, ...] = ()) -> base.Delta:
    return base.Delta(text, 3, n, finish, at=float(n), logprobs=logprobs)


def test_first_delta_alone_then_queued_deltas_joined_up_to_the_end() -> None:
    async def run() -> list[base.Delta | BaseException | None]:
        outbox = llama_cpp_slots.Outbox(asyncio.get_running_loop())
        for i, text in enumerate(["a", "b", "c", "d"], start=1):
            outbox.put(_delta(text, i))
        outbox.put(_delta("e", 5, "length"))
        outbox.put(None)
        return [await outbox.get() for _ in range(3)]

    first, joined, end = asyncio.run(run())
    assert first == _delta("a", 1)  # its time is the time to first token: never joined
    assert joined == base.Delta("bcde", 3, 5, "length", at=5.0)
    assert end is None


def test_failure_is_not_joined_and_logprobs_are_kept_in_order() -> None:
    entries = [base.TokenLogprob(str(i), -float(i), str(i).encode()) for i in range(3)]

    async def run() -> list[base.Delta | BaseException | None]:
        outbox = llama_cpp_slots.Outbox(asyncio.get_running_loop())
        for i in range(3):
            outbox.put(_delta(str(i), i + 1, logprobs=(entries[i],)))
        failure = base.BackendError("boom")
        outbox.put(failure)
        outbox.put(None)
        return [await outbox.get() for _ in range(4)]

    first, joined, failure, end = asyncio.run(run())
    assert first.logprobs == (entries[0],)  # type: ignore[union-attr]
    assert joined == base.Delta("12", 3, 3, None, at=3.0, logprobs=(entries[1], entries[2]))
    assert isinstance(failure, base.BackendError) and end is None
