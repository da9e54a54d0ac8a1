"""The wire form of streamed responses: one `data: {json}` server-sent event per chunk, then
`data: [DONE]`.

This is the reference the runtime's pre-encoded SSE templates (llmserver_runtime.server.sse) are
tested against, chunk for chunk and byte for byte."""

from __future__ import annotations

from llmserver_api.protocol import chat, completions

DONE = b"data: [DONE]\n\n"

Chunk = chat.ChatCompletionChunk | completions.Completion


def chunk_json(chunk: Chunk) -> str:
    """The chunk's JSON; `usage` appears only on the usage chunk, as OpenAI sends it."""
    return chunk.model_dump_json(exclude={"usage"} if chunk.usage is None else None)


def event(chunk: Chunk) -> bytes:
    """One server-sent event carrying `chunk`."""
    return b"data: " + chunk_json(chunk).encode() + b"\n\n"
