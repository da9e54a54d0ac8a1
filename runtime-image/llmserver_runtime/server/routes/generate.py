"""The path chat and completions share: sampling per choice → one Generation on the backend →
an SSE stream or one whole JSON body, with usage and metrics booked by the Generation either way.

The routes keep what differs (validation, how inputs are made, the final body's shape), so their
checks and OpenAI error shapes stay theirs; this module owns the order of the shared steps: the
admission slot and the first delta before any byte (errors stay plain HTTP errors), client
disconnects cancelling the work, and the slot always released."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import pydantic
from llmserver_backends import base
from starlette import requests, responses

from llmserver_api.protocol import chat, common, completions
from llmserver_runtime.server import admission, disconnect, generation, request_bounds, sse, state, tool_output
from llmserver_runtime.server.routes import common as route_common

T = TypeVar("T")
Results = list[generation.Result]
# (response id, created, model, each choice whole, usage, system_fingerprint) -> the whole response body
Whole = Callable[[str, int, str, Results, common.Usage, str], pydantic.BaseModel]
# (request, started generation, response id, created) -> the SSE body, for a wire format other than
# chat/completion chunks (the Responses API's events); it must close the generation when it ends.
StreamBody = Callable[[requests.Request, generation.Generation, str, int], AsyncGenerator[bytes, None]]


@dataclasses.dataclass(frozen=True)
class Kind:
    """What tells the two wire formats apart in the shared steps."""

    param: str  # the request field errors point at: messages or prompt
    id_prefix: str  # chatcmpl or cmpl
    chunk_object: str  # chat.completion.chunk or text_completion


async def respond(
    request: requests.Request,
    runtime: state.Runtime,
    gate: admission.Admission,
    body: chat.ChatCompletionRequest | completions.CompletionRequest,
    call: Callable[[T, base.SamplingParams], AsyncIterator[base.Delta]],
    count: int,
    load: Callable[[], Awaitable[Sequence[T]]],
    *,
    max_tokens: int | None,
    arrived: float,
    kind: Kind,
    whole: Whole,
    prefixes: list[str] | None = None,
    plan: tool_output.Plan | None = None,
    stream: StreamBody | None = None,
) -> responses.Response:
    """Runs `body.n` choices of `call` for each of the `count` inputs (input-major) and answers in
    `body`'s mode. `load` makes the inputs once the admission slot is held (images are decoded
    then, not before), so every costly step is bounded by admission.

    `prefixes` (completions with echo) go before each choice's text. `plan` (chat) adds the JSON
    constraint and the tools to each choice's parameters and shapes streamed text into content or
    tool-call deltas. `stream` (the Responses API) writes the SSE body in place of chat chunks."""
    max_tokens_param = "max_completion_tokens" if getattr(body, "max_completion_tokens", None) else "max_tokens"
    request_bounds.max_tokens(max_tokens, max_tokens_param)
    request_bounds.seed(body.seed)
    options = route_common.generation_options(body, runtime.backend)
    adapter = runtime.adapters.resolve(body.model)  # checked by the route: the base model or a loaded adapter
    fingerprint = route_common.fingerprint(runtime.backend)
    loaded: list[T] = []

    async def prepare() -> None:
        loaded.extend(await load())

    starts: list[generation.StartFn] = [
        functools.partial(
            _start,
            call,
            loaded,
            index,
            _with_plan(route_common.sampling(body, options, max_tokens=max_tokens, choice=k, adapter=adapter), plan),
        )
        for index in range(count)
        for k in range(body.n)
    ]
    gen = generation.Generation(
        runtime,
        starts,
        n_per_prompt=body.n,
        stop=common.stop_list(body.stop),
        arrived=arrived,
        param=kind.param,
        prepare=prepare,
    )
    response_id, created = route_common.new_id(kind.id_prefix), route_common.now()
    async with disconnect.cancel_on_disconnect(request):
        await gen.start(gate)
        if body.stream and stream is not None:
            return sse.EventStreamResponse(stream(request, gen, response_id, created), sse.closer(request, gen))
        if body.stream:
            writer = sse.ChunkWriter(response_id, created, body.model, kind.chunk_object, fingerprint)
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return sse.EventStreamResponse(
                sse.events(
                    request, gen, writer, include_usage=include_usage, param=kind.param, prefixes=prefixes,
                    shape=None if plan is None else functools.partial(tool_output.ChoiceStream, plan),
                ),  # fmt: skip
                sse.closer(request, gen),
            )
        try:
            results = await gen.collect()
        finally:
            gen.close()
    return route_common.json_response(
        whole(response_id, created, body.model, results, gen.usage(), fingerprint).model_dump_json()
    )


def _with_plan(params: base.SamplingParams, plan: tool_output.Plan | None) -> base.SamplingParams:
    if plan is None:
        return params
    return dataclasses.replace(params, constraint=plan.constraint, tools=plan.tools)


def _start(
    call: Callable[[T, base.SamplingParams], AsyncIterator[base.Delta]],
    loaded: Sequence[T],
    index: int,
    params: base.SamplingParams,
) -> AsyncIterator[base.Delta]:
    return call(loaded[index], params)


async def ready(value: Sequence[T]) -> Sequence[T]:
    """`load` for inputs that need no preparation."""
    return value
