"""Server-sent events for chat and completion streams.

Chunks are written from pre-encoded templates (the id/model header is the same for every chunk):
per-token JSON building is the server's hot path. The shapes are the protocol models' (first
chunk `{"role": "assistant", "content": ""}`, content deltas, a finish chunk per choice, an
optional usage chunk with empty choices, then `data: [DONE]`); tests/unit/runtime/test_sse_chunks.py
proves each template writes exactly what `llmserver_api.protocol.stream.event` makes of the
`ChatCompletionChunk` or `Completion` model, byte for byte."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

from starlette import requests, responses, types

from llmserver_api.protocol import common, stream
from llmserver_runtime.server import errors, generation, logprobs, tool_output

log = logging.getLogger("llmserver.runtime")

DONE = stream.DONE
OUTCOME = "llmserver.outcome"  # scope key: the status to book when it differs from the HTTP one


def set_outcome(request: requests.Request, status: int) -> None:
    """Book `status` for the request metrics (499: client gone; 5xx: failed mid-stream)."""
    request.scope[OUTCOME] = status


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ChunkWriter:
    """Encodes chunks of one response (`object` is chat.completion.chunk or text_completion).

    `logprobs` arguments are the choice's logprobs object already serialised by its protocol
    model (`chat.ChoiceLogprobs` / `completions.CompletionLogprobs`), or None for `null`."""

    def __init__(self, response_id: str, created: int, model: str, obj: str, fingerprint: str) -> None:
        self.is_chat = obj == "chat.completion.chunk"
        fields: dict[str, Any] = {"id": response_id, "object": obj, "created": created, "model": model}
        if self.is_chat:
            fields["service_tier"] = "default"
        fields["system_fingerprint"] = fingerprint
        head = _dumps(fields)
        self._head = "data: " + head[:-1] + ',"choices":['

    def chat(
        self, index: int, delta: dict[str, Any], finish_reason: str | None = None, logprobs: str | None = None
    ) -> bytes:
        """One chat choice delta."""
        choice = (
            f'{{"index":{index},"delta":{_dumps(delta)},"logprobs":{logprobs or "null"},'
            f'"finish_reason":{_dumps(finish_reason)}}}'
        )
        return (self._head + choice + "]}\n\n").encode()

    def text(self, index: int, text: str, finish_reason: str | None = None, logprobs: str | None = None) -> bytes:
        """One completion choice piece."""
        choice = (
            f'{{"index":{index},"text":{_dumps(text)},"finish_reason":{_dumps(finish_reason)},'
            f'"logprobs":{logprobs or "null"}}}'
        )
        return (self._head + choice + "]}\n\n").encode()

    def usage(self, usage: common.Usage) -> bytes:
        """The usage chunk (empty choices)."""
        return (self._head + '],"usage":' + usage.model_dump_json() + "}\n\n").encode()


async def events(
    request: requests.Request,
    gen: generation.Generation,
    writer: ChunkWriter,
    *,
    include_usage: bool,
    param: str,
    prefixes: list[str] | None = None,
    shape: Callable[[], tool_output.ChoiceStream] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The whole event stream of a started Generation; always closes it.

    `prefixes` (completions with echo) is prepended to each choice's first piece. `shape` (chat
    with tools or response_format) makes each choice's stream of content or tool-call deltas."""
    completed = False
    started: set[int] = set()
    shaped: dict[int, tool_output.ChoiceStream] = {}
    offsets = {i: len(prefix) for i, prefix in enumerate(prefixes or [])}  # completions' text_offset
    try:
        async for piece in gen.pieces():
            encoded = logprobs.encode(piece, writer.is_chat, offsets) if piece.logprobs else None
            if writer.is_chat:
                if piece.index not in started:
                    started.add(piece.index)
                    yield writer.chat(piece.index, {"role": "assistant", "content": ""})
                if shape is not None:
                    choice = shaped.setdefault(piece.index, shape())
                    for chunk in _shaped(writer, choice, piece, encoded):
                        yield chunk
                    continue
                if piece.text or encoded:
                    yield writer.chat(piece.index, {"content": piece.text}, None, encoded)
                if piece.finish_reason is not None:
                    yield writer.chat(piece.index, {}, piece.finish_reason)
            else:
                text = piece.text
                if piece.index not in started:
                    started.add(piece.index)
                    if prefixes:
                        text = prefixes[piece.index] + text
                if text or piece.finish_reason is not None or encoded:
                    yield writer.text(piece.index, text, piece.finish_reason, encoded)
        if include_usage:
            yield writer.usage(gen.usage())
        yield DONE
        completed = True
    except Exception as exc:  # noqa: BLE001 - after the headers the error can only go in the stream
        error = errors.from_exception(exc, param)
        set_outcome(request, error.status_code)
        completed = True
        yield error.sse_event()
    finally:
        if not completed:
            set_outcome(request, 499)
        gen.close()


def _shaped(
    writer: ChunkWriter, choice: tool_output.ChoiceStream, piece: generation.Piece, encoded: str | None
) -> list[bytes]:
    """A chat piece through its choice's tool/format stream; the piece's logprobs ride on its first
    delta (or on an empty content delta when the stream holds the text back)."""
    deltas = choice.feed(piece.text)
    reason = None
    if piece.finish_reason is not None:
        more, reason = choice.finish(piece.finish_reason)
        deltas += more
    if encoded and not deltas:
        deltas = [{"content": ""}]
    chunks = [writer.chat(piece.index, delta, None, encoded if i == 0 else None) for i, delta in enumerate(deltas)]
    if reason is not None:
        chunks.append(writer.chat(piece.index, {}, reason))
    return chunks


class EventStreamResponse(responses.StreamingResponse):
    """A StreamingResponse that always closes its body iterator and then calls `on_close`, so a
    dropped client's generation is cancelled and its slot released even when the drop happened
    while a chunk was being sent, or before the first chunk was asked for (an async generator that
    never started skips its own `finally`)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[bytes, None], on_close: Callable[[], None]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._events = content
        self._on_close = on_close

    async def __call__(self, scope: types.Scope, receive: types.Receive, send: types.Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()
            self._on_close()


def closer(request: requests.Request, gen: generation.Generation) -> Callable[[], None]:
    """`on_close` for a generation's stream: books 499 if it never completed nor failed, and
    releases the generation (idempotent; `events` normally did both already)."""

    def close() -> None:
        if not gen.completed and OUTCOME not in request.scope:
            set_outcome(request, 499)
        gen.close()

    return close
