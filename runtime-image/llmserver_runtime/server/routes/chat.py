"""POST /v1/chat/completions."""

from __future__ import annotations

import functools
import time

import fastapi
import llmserver_api
from llmserver_backends import base
from starlette import requests, responses

from llmserver_api.protocol import chat, common
from llmserver_runtime.server import generation, logprobs, messages, state, tool_output
from llmserver_runtime.server.routes import common as route_common
from llmserver_runtime.server.routes import generate

router = fastapi.APIRouter()

KIND = generate.Kind(param="messages", id_prefix="chatcmpl", chunk_object="chat.completion.chunk")


def _message(plan: tool_output.Plan, result: generation.Result) -> tuple[chat.ResponseMessage, str]:
    content, calls, finish_reason = tool_output.whole(plan, result.text, result.finish_reason)
    return chat.ResponseMessage(content=content, tool_calls=calls), finish_reason


def _whole(
    body: chat.ChatCompletionRequest,
    plan: tool_output.Plan,
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
                message=message,
                logprobs=logprobs.chat_logprobs(result.logprobs) if body.logprobs else None,
                finish_reason=finish_reason,
            )
            for i, result in enumerate(results)
            for message, finish_reason in [_message(plan, result)]
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
    plan = tool_output.plan(body)

    async def history() -> list[list[base.ChatMessage]]:
        return [await messages.convert(body.messages, runtime, runtime.images)]

    return await generate.respond(
        request, runtime, gate, body, runtime.backend.chat, 1, history,
        max_tokens=body.effective_max_tokens, arrived=arrived, kind=KIND,
        whole=functools.partial(_whole, body, plan), plan=plan,
    )  # fmt: skip
