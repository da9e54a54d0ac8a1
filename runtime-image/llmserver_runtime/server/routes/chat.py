"""POST /v1/chat/completions."""

from __future__ import annotations

import functools
import time

import fastapi
import llmserver_api
from llmserver_backends import base
from starlette import requests, responses

from llmserver_api.protocol import chat, common
from llmserver_runtime.server import logprobs, messages, state
from llmserver_runtime.server.routes import common as route_common
from llmserver_runtime.server.routes import generate

router = fastapi.APIRouter()

KIND = generate.Kind(param="messages", id_prefix="chatcmpl", chunk_object="chat.completion.chunk")


def _whole(
    body: chat.ChatCompletionRequest,
    response_id: str, created: int, model: str, results: generate.Results, usage: common.Usage, fingerprint: str
) -> chat.ChatCompletion:
    return chat.ChatCompletion(
        id=response_id,
        created=created,
        model=model,
        system_fingerprint=fingerprint,
        choices=[
            chat.Choice(
                index=i,
                message=chat.ResponseMessage(content=result.text),
                logprobs=logprobs.chat_logprobs(result.logprobs) if body.logprobs else None,
                finish_reason=result.finish_reason,
            )
            for i, result in enumerate(results)
        ],
        usage=usage,
    )


@router.post("/v1/chat/completions")
async def chat_completions(body: chat.ChatCompletionRequest, request: requests.Request) -> responses.Response:
    """Chat completion, streamed as SSE or returned whole."""
    arrived = time.perf_counter()
    runtime = state.of(request)
    gate = runtime.check(body.model, llmserver_api.Capability.TEXT_GENERATION)
    messages.check_images(body.messages, runtime, runtime.limits)

    async def history() -> list[list[base.ChatMessage]]:
        return [await messages.convert(body.messages, runtime, runtime.images)]

    return await generate.respond(
        request, runtime, gate, body, runtime.backend.chat, 1, history,
        max_tokens=body.effective_max_tokens, arrived=arrived, kind=KIND, whole=functools.partial(_whole, body),
    )  # fmt: skip
