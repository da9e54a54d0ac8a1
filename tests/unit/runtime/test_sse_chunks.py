"""The runtime's pre-encoded SSE templates write exactly the protocol models' serialisation.

The templates are the streaming hot path; `llmserver_api.protocol.stream` (over
`ChatCompletionChunk` and `Completion`) is the wire reference. Many generated chunks (awkward text
included: quotes, backslashes, control characters, non-ASCII, line separators) must come out
byte-identical, and every event of a whole stream must parse as its model and re-serialise
unchanged."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import AsyncIterator

import pytest
from llmserver_backends import base
from llmserver_runtime.server import sse

from llmserver_api.protocol import chat, common, completions, stream

CHAT = "chat.completion.chunk"
TEXT = "text_completion"
ALPHABET = (
    "abcXYZ019 .,;:!?-_/<>&'\"\\{}[]\n\r\t\b\f\x00\x01\x1f\x7f"
    "éßø中文日本語🙂👍🏽\u2028\u2029\ufeff\u00a0\u200b"
)
FINISH_REASONS = (None, None, "stop", "length")
SEEDS = range(40)


def _text(rng: random.Random, max_length: int = 24) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, max_length)))


def _writer(rng: random.Random, obj: str) -> tuple[sse.ChunkWriter, dict[str, object]]:
    head = {
        "id": f"cmpl-{_text(rng, 8)}",
        "created": rng.randint(0, 2**40),
        "model": _text(rng, 12) or "m",
        "system_fingerprint": "fp_" + _text(rng, 10),
    }
    fingerprint = str(head["system_fingerprint"])
    writer = sse.ChunkWriter(str(head["id"]), int(head["created"]), str(head["model"]), obj, fingerprint)
    return writer, head


def _usage(rng: random.Random) -> common.Usage:
    prompt, completion = rng.randint(0, 10**6), rng.randint(0, 10**6)
    return common.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


@pytest.mark.parametrize("seed", SEEDS)
def test_chat_templates_equal_the_chunk_model(seed: int) -> None:
    rng = random.Random(seed)
    writer, head = _writer(rng, CHAT)
    for _ in range(25):
        index = rng.randint(0, 31)
        finish_reason = rng.choice(FINISH_REASONS)
        shape = rng.choice(("role", "content", "finish"))
        if shape == "role":
            wire, delta = {"role": "assistant", "content": ""}, chat.ChunkDelta(role="assistant", content="")
        elif shape == "content":
            text = _text(rng)
            wire, delta = {"content": text}, chat.ChunkDelta(content=text)
        else:
            wire, delta = {}, chat.ChunkDelta()
        model = chat.ChatCompletionChunk(
            **head, choices=[chat.ChunkChoice(index=index, delta=delta, finish_reason=finish_reason)]
        )
        assert writer.chat(index, wire, finish_reason) == stream.event(model)
    usage = _usage(rng)
    assert writer.usage(usage) == stream.event(chat.ChatCompletionChunk(**head, choices=[], usage=usage))


@pytest.mark.parametrize("seed", SEEDS)
def test_completion_templates_equal_the_completion_model(seed: int) -> None:
    rng = random.Random(seed)
    writer, head = _writer(rng, TEXT)
    for _ in range(25):
        index, text, finish_reason = rng.randint(0, 255), _text(rng), rng.choice(FINISH_REASONS)
        model = completions.Completion(
            **head, choices=[completions.CompletionChoice(index=index, text=text, finish_reason=finish_reason)]
        )
        assert writer.text(index, text, finish_reason) == stream.event(model)
    usage = _usage(rng)
    assert writer.usage(usage) == stream.event(completions.Completion(**head, choices=[], usage=usage))


def test_models_serialise_as_openai_sends_them() -> None:
    """The reference itself: minimal deltas, logprobs null, `usage` only on the usage chunk."""
    chunk = chat.ChatCompletionChunk(
        id="c", created=1, model="m", system_fingerprint="fp",
        choices=[chat.ChunkChoice(index=0, delta=chat.ChunkDelta())],
    )
    assert json.loads(stream.chunk_json(chunk)) == {
        "id": "c", "object": CHAT, "created": 1, "model": "m", "service_tier": "default", "system_fingerprint": "fp",
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}],
    }
    usage = common.Usage(prompt_tokens=2, completion_tokens=3, total_tokens=5)
    text = completions.Completion(id="t", created=1, model="m", system_fingerprint="fp", choices=[], usage=usage)
    assert json.loads(stream.chunk_json(text))["usage"] == usage.model_dump()


@dataclasses.dataclass(frozen=True)
class _Piece:
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: tuple[base.TokenLogprob, ...] = ()


def _token_logprobs(rng: random.Random) -> tuple[base.TokenLogprob, ...]:
    """A few tokens with awkward texts, partial UTF-8 bytes and alternatives (or none at all)."""
    if rng.random() < 0.5:
        return ()

    def token() -> tuple[str, float, bytes]:
        text = _text(rng, 3)
        return text, -rng.random() * 20, text.encode()[: rng.randint(0, 4)]

    return tuple(
        base.TokenLogprob(*token(), top=tuple(token() for _ in range(rng.randint(0, 3))))
        for _ in range(rng.randint(1, 3))
    )


@dataclasses.dataclass
class _Generation:
    """What `sse.events` reads of a Generation: its pieces, its usage, and close()."""

    script: list[_Piece]
    usage_value: common.Usage
    closed: bool = False

    async def pieces(self) -> AsyncIterator[_Piece]:
        for piece in self.script:
            yield piece

    def usage(self) -> common.Usage:
        return self.usage_value

    def close(self) -> None:
        self.closed = True


@dataclasses.dataclass
class _Request:
    scope: dict[str, object] = dataclasses.field(default_factory=dict)


def _script(rng: random.Random, choices: int) -> list[_Piece]:
    """Interleaved pieces of `choices` choices, each ending with a finish reason."""
    remaining = {index: rng.randint(1, 6) for index in range(choices)}
    script: list[_Piece] = []
    while remaining:
        index = rng.choice(sorted(remaining))
        remaining[index] -= 1
        last = remaining[index] == 0
        finish = rng.choice(("stop", "length")) if last else None
        script.append(_Piece(index, _text(rng, 6), finish, _token_logprobs(rng)))
        if last:
            del remaining[index]
    return script


async def _collect(events: AsyncIterator[bytes]) -> list[bytes]:
    return [event async for event in events]


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("obj", [CHAT, TEXT])
def test_every_event_of_a_stream_is_its_model_reserialised(seed: int, obj: str) -> None:
    rng = random.Random(seed)
    writer, _ = _writer(rng, obj)
    choices = rng.randint(1, 4)
    gen = _Generation(_script(rng, choices), _usage(rng))
    prefixes = [_text(rng, 4) for _ in range(choices)] if obj == TEXT and rng.random() < 0.5 else None
    include_usage = rng.random() < 0.5
    request = _Request()
    events = asyncio.run(_collect(sse.events(
        request, gen, writer, include_usage=include_usage, param="messages", prefixes=prefixes  # type: ignore[arg-type]
    )))

    assert events[-1] == stream.DONE and gen.closed and sse.OUTCOME not in request.scope
    model_type = chat.ChatCompletionChunk if obj == CHAT else completions.Completion
    parsed = []
    for event in events[:-1]:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        chunk = model_type.model_validate_json(event[len(b"data: "):-2])
        assert stream.event(chunk) == event
        parsed.append(chunk)
    assert (parsed[-1].usage == gen.usage_value) is include_usage
    finished = [c.choices[0].index for c in parsed if c.choices and c.choices[0].finish_reason is not None]
    assert sorted(finished) == list(range(choices))
