"""POST /v1/responses: OpenAI's Responses API on the chat generation path.

The request becomes a chat request (`responses_translate`), so tools, structured output, sampling
and every per-engine refusal are chat's; the answer is reshaped into a `response` object or its
event stream (`responses_output`). Nothing is stored: `previous_response_id` is refused."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncGenerator
from typing import Any

import fastapi
import llmserver_api
import pydantic
from llmserver_backends import base
from starlette import requests, responses

from llmserver_api.protocol import common
from llmserver_api.protocol import responses as protocol
from llmserver_runtime.server import errors as server_errors
from llmserver_runtime.server import (
    generation,
    messages,
    responses_output,
    responses_translate,
    sse,
    state,
    tool_output,
)
from llmserver_runtime.server.routes import generate

router = fastapi.APIRouter()

KIND = generate.Kind(param="input", id_prefix="resp", chunk_object="response")


def _whole(
    body: protocol.ResponsesRequest,
    plan: tool_output.Plan,
    response_id: str, created: int, model: str, results: generate.Results, usage: common.Usage, _: str,
) -> pydantic.BaseModel:
    """The whole `response` object (generate.Whole)."""
    envelope = responses_output.Envelope(body, response_id, created, model)
    content, calls, finish_reason = tool_output.whole(plan, results[0].text, results[0].finish_reason)
    output = responses_output.whole_output(content, calls, finish_reason)
    return pydantic.RootModel[dict[str, Any]](envelope.response(output, finish_reason, usage))


def _streamer(body: protocol.ResponsesRequest, plan: tool_output.Plan) -> generate.StreamBody:
    async def events(
        request: requests.Request, gen: generation.Generation, response_id: str, created: int
    ) -> AsyncGenerator[bytes, None]:
        writer = responses_output.EventWriter(responses_output.Envelope(body, response_id, created, body.model))
        choice = tool_output.ChoiceStream(plan)
        completed = False
        try:
            for event in writer.start():
                yield event
            async for piece in gen.pieces():
                out = writer.feed(choice.feed(piece.text))
                if piece.finish_reason is not None:
                    more, reason = choice.finish(piece.finish_reason)
                    out += writer.feed(more) + writer.finish(reason, gen.usage())
                for event in out:
                    yield event
            completed = True
        except Exception as exc:  # noqa: BLE001 - after the headers the error can only go in the stream
            error = server_errors.from_exception(exc, KIND.param)
            sse.set_outcome(request, error.status_code)
            completed = True
            yield writer.error(error)
        finally:
            if not completed:
                sse.set_outcome(request, 499)
            gen.close()

    return events


@router.post("/v1/responses")
async def create_response(body: protocol.ResponsesRequest, request: requests.Request) -> responses.Response:
    """A model response, streamed as Responses events or returned whole."""
    arrived = time.perf_counter()
    runtime = state.of(request)
    with responses_translate.renamed_params():
        gate = runtime.check(body.model, llmserver_api.Capability.TEXT_GENERATION)
        responses_translate.check(body)
        chat_body = responses_translate.to_chat(body)
        messages.check_images(chat_body.messages, runtime, runtime.limits)
        plan = tool_output.plan(chat_body)

        async def history() -> list[list[base.ChatMessage]]:
            return [await messages.convert(chat_body.messages, runtime, runtime.images)]

        return await generate.respond(
            request, runtime, gate, chat_body, runtime.backend.chat, 1, history,
            max_tokens=chat_body.effective_max_tokens, arrived=arrived, kind=KIND,
            whole=functools.partial(_whole, body, plan), plan=plan, stream=_streamer(body, plan),
        )  # fmt: skip
