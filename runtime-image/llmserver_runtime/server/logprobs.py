"""Backend token log probabilities in OpenAI's two wire shapes.

Chat: `choices[].logprobs.content[] {token, logprob, bytes, top_logprobs[]}`. Completions (legacy):
parallel lists `tokens`, `token_logprobs`, `top_logprobs` ({token: logprob}) and `text_offset`
(each token's character offset in the choice's text, echoed prompt included)."""

from __future__ import annotations

from collections.abc import Sequence

from llmserver_backends import base

from llmserver_api.protocol import chat, completions
from llmserver_runtime.server import generation


def chat_logprobs(tokens: Sequence[base.TokenLogprob]) -> chat.ChoiceLogprobs:
    """The chat logprobs object of `tokens`."""
    return chat.ChoiceLogprobs(
        content=[
            chat.TokenLogprob(
                token=t.token,
                logprob=t.logprob,
                bytes=list(t.token_bytes),
                top_logprobs=[chat.TopLogprob(token=a, logprob=lp, bytes=list(b)) for a, lp, b in t.top],
            )
            for t in tokens
        ]
    )


def completion_logprobs(tokens: Sequence[base.TokenLogprob], offset: int = 0) -> completions.CompletionLogprobs:
    """The legacy logprobs object of `tokens`, the first at character `offset` of the choice."""
    offsets: list[int] = []
    for t in tokens:
        offsets.append(offset)
        offset += len(t.token)
    return completions.CompletionLogprobs(
        tokens=[t.token for t in tokens],
        token_logprobs=[t.logprob for t in tokens],
        top_logprobs=[{a: lp for a, lp, _ in t.top} for t in tokens],
        text_offset=offsets,
    )


def encode(piece: generation.Piece, is_chat: bool, offsets: dict[int, int]) -> str:
    """A streamed piece's logprobs as JSON; `offsets` (choice -> next text offset) advances."""
    tokens = piece.logprobs
    if is_chat:
        return chat_logprobs(tokens).model_dump_json()
    start = offsets.get(piece.index, 0)
    offsets[piece.index] = start + sum(len(t.token) for t in tokens)
    return completion_logprobs(tokens, start).model_dump_json()
