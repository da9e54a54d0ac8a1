"""Runs a request's generations on the backend and observes them.

One `Generation` per chat/completion request: it queues for an admission slot, waits for the first
delta before any response byte is sent (so context-length and engine errors are plain HTTP errors,
never a broken stream), then yields text pieces choice after choice with stop strings applied,
recording time to first token, inter-token latency and token usage. `close()` releases the slot
and books the tokens, whichever way the request ended. Work that is costly to prepare (decoding
images) runs in `prepare`, after the slot is taken, so admission bounds it too."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from llmserver_backends import base, stops

from llmserver_api.protocol import common
from llmserver_runtime.server import admission, errors, state

T = TypeVar("T")
StartFn = Callable[[], AsyncIterator[base.Delta]]


@dataclasses.dataclass(frozen=True)
class Piece:
    """Text for one choice; `finish_reason` is set on that choice's last piece. `logprobs` holds
    the tokens behind the text since the previous piece (when the request asked for them)."""

    index: int
    text: str
    finish_reason: str | None
    logprobs: tuple[base.TokenLogprob, ...] = ()


@dataclasses.dataclass(frozen=True)
class Result:
    """One whole choice, for non-streaming responses."""

    text: str
    finish_reason: str
    logprobs: tuple[base.TokenLogprob, ...] = ()


async def _aclose(stream: AsyncIterator[base.Delta]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


class Generation:
    """The n choices of one request (or of a batch of prompts), run one after another."""

    def __init__(
        self,
        runtime: state.Runtime,
        starts: list[StartFn],
        *,
        n_per_prompt: int,
        stop: tuple[str, ...],
        arrived: float,
        param: str,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.prepare = prepare  # run once the slot is held, before choice 0 starts
        self.metrics = runtime.metrics
        self.starts = starts
        self.n_per_prompt = n_per_prompt
        self.stop = stop
        self.arrived = arrived  # time.perf_counter() when the request came in
        self.param = param  # the request field errors point at: messages or prompt
        self.deadline = asyncio.get_running_loop().time() + runtime.settings.request_timeout
        self.prompt_tokens: dict[int, int] = {}  # per prompt index
        self.completion_tokens: dict[int, int] = {}  # per choice index
        self._ticket: admission.Ticket | None = None
        self._first: tuple[AsyncIterator[base.Delta], base.Delta | None] | None = None
        self._last_token_at: float | None = None
        self._ttft_seen = False
        self._closed = False
        self.completed = False  # every choice ran to its end

    async def start(self, gate: admission.Admission) -> None:
        """Take a slot and the first delta of choice 0; raises what the request should answer."""
        try:
            async with asyncio.timeout_at(self.deadline):
                self._ticket = await gate.acquire()
                if self.prepare is not None:
                    await self.prepare()
                stream = self.starts[0]()
                try:
                    first = await anext(stream, None)
                except BaseException:
                    await _aclose(stream)
                    raise
            self._first = (stream, first)
        except (base.BackendError, TimeoutError) as exc:
            self.close()
            raise errors.from_exception(exc, self.param) from exc
        except BaseException:
            self.close()
            raise

    def _observe(self, delta: base.Delta, index: int) -> None:
        now = delta.at if delta.at is not None else time.perf_counter()
        new_tokens = delta.completion_tokens - self.completion_tokens.get(index, 0)
        if new_tokens > 0:
            if not self._ttft_seen:
                self._ttft_seen = True
                self.metrics.ttft.observe(now - self.arrived)
            elif self._last_token_at is not None:
                self.metrics.token_gaps((now - self._last_token_at) / new_tokens, new_tokens)
            self._last_token_at = now
        self.completion_tokens[index] = delta.completion_tokens
        self.prompt_tokens[index // self.n_per_prompt] = delta.prompt_tokens

    async def _next(self, stream: AsyncIterator[base.Delta]) -> base.Delta | None:
        async with asyncio.timeout_at(self.deadline):
            return await anext(stream, None)

    async def pieces(self) -> AsyncIterator[Piece]:
        """Every choice's text, in choice order; raises TimeoutError past the request timeout."""
        assert self._first is not None, "start() first"
        for index, start in enumerate(self.starts):
            if index == 0:
                stream, delta = self._first
            else:
                self._last_token_at = None  # the next gap would include this choice's prefill
                stream = start()
                delta = await self._next(stream)
            matcher = stops.StopMatcher(self.stop)
            held: tuple[base.TokenLogprob, ...] = ()  # logprobs of text the matcher still holds back
            try:
                while delta is not None:
                    self._observe(delta, index)
                    held += delta.logprobs
                    text, stopped = matcher.feed(delta.text)
                    if stopped:
                        yield Piece(index, text, "stop", held)
                        break
                    if delta.finish_reason is not None:
                        yield Piece(index, text + matcher.flush(), delta.finish_reason, held)
                        break
                    if text:
                        yield Piece(index, text, None, held)
                        held = ()
                    delta = await self._next(stream)
                else:
                    yield Piece(index, matcher.flush(), "stop", held)
            finally:
                await _aclose(stream)
        self.completed = True

    async def collect(self) -> list[Result]:
        """Each choice whole, for non-streaming responses."""
        texts: list[list[str]] = [[] for _ in self.starts]
        logprobs: list[list[base.TokenLogprob]] = [[] for _ in self.starts]
        finish: list[str] = ["stop"] * len(self.starts)
        try:
            async for piece in self.pieces():
                texts[piece.index].append(piece.text)
                logprobs[piece.index].extend(piece.logprobs)
                if piece.finish_reason is not None:
                    finish[piece.index] = piece.finish_reason
        except (base.BackendError, TimeoutError) as exc:
            raise errors.from_exception(exc, self.param) from exc
        return [Result("".join(parts), reason, tuple(lp)) for parts, reason, lp in zip(texts, finish, logprobs)]

    def usage(self) -> common.Usage:
        """Real usage so far: prompts counted once each, completions summed over choices."""
        prompt = sum(self.prompt_tokens.values())
        completion = sum(self.completion_tokens.values())
        return common.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def close(self) -> None:
        """Release the slot and book the tokens (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._ticket is not None:
            self._ticket.release()
        self.metrics.tokens(sum(self.prompt_tokens.values()), sum(self.completion_tokens.values()))


async def run_admitted(runtime: state.Runtime, gate: admission.Admission, call: Callable[[], Awaitable[T]]) -> T:
    """One non-generating backend call (embed, rerank) under admission control and the timeout.

    The slot is held until the call really ends. A timeout or a client gone stops the waiting,
    not the engine's worker thread (a blocking embed cannot be interrupted), so the call is left to
    finish and only then gives its slot back: admission keeps bounding the work the engine does."""
    async with asyncio.timeout(runtime.settings.request_timeout):
        ticket = await gate.acquire()
        try:
            work = asyncio.ensure_future(call())
        except BaseException:
            ticket.release()
            raise
        work.add_done_callback(functools.partial(_release_when_done, ticket))
        return await asyncio.shield(work)


def _release_when_done(ticket: admission.Ticket, work: asyncio.Future[object]) -> None:
    ticket.release()
    if not work.cancelled():
        work.exception()  # retrieved: a call nobody awaits any more must not log "never retrieved"
