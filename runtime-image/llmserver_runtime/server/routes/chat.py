"""POST /v1/chat/completions."""

from __future__ import annotations

import functools
import time

import fastapi
from llmserver_backends import base
from starlette import requests, responses

from llmserver_runtime.protocol import chat, common
from llmserver_runtime.server import disconnect, generation, messages, sse, state
from llmserver_runtime.server.routes import common as route_common

router = fastapi.APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(body: chat.ChatCompletionRequest, request: requests.Request) -> responses.Response:
    """Chat completion, streamed as SSE or returned whole."""
    arrived = time.perf_counter()
    runtime = state.of(request)
    gate = runtime.check(body.model, base.Capability.TEXT_GENERATION)
    route_common.refuse_if(body.logprobs, "logprobs", "logprobs")
    route_common.refuse_if(body.tools, "tools", "Tool calling")
    history = await messages.convert(body.messages, runtime, runtime.images)
    starts = [
        functools.partial(
            runtime.backend.chat,
            history,
            route_common.sampling(
                max_tokens=body.effective_max_tokens,
                temperature=body.temperature,
                top_p=body.top_p,
                stop=body.stop,
                seed=body.seed,
                choice=k,
            ),
        )
        for k in range(body.n)
    ]
    gen = generation.Generation(
        runtime, starts, n_per_prompt=body.n, stop=common.stop_list(body.stop), arrived=arrived, param="messages"
    )
    response_id, created = route_common.new_id("chatcmpl"), route_common.now()
    async with disconnect.cancel_on_disconnect(request):
        await gen.start(gate)
        if body.stream:
            writer = sse.ChunkWriter(response_id, created, runtime.model, "chat.completion.chunk")
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return sse.EventStreamResponse(
                sse.events(request, gen, writer, include_usage=include_usage, param="messages"),
                sse.closer(request, gen),
            )
        try:
            results = await gen.collect()
        finally:
            gen.close()
    completion = chat.ChatCompletion(
        id=response_id,
        created=created,
        model=runtime.model,
        choices=[
            chat.Choice(index=i, message=chat.ResponseMessage(content=text), finish_reason=reason)
            for i, (text, reason) in enumerate(results)
        ],
        usage=gen.usage(),
    )
    return route_common.json_response(completion.model_dump_json())
