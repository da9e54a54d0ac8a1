"""POST /v1/completions (legacy text completion; batches of prompts allowed)."""

from __future__ import annotations

import functools
import time

import fastapi
from llmserver_backends import base
from starlette import requests, responses

from llmserver_runtime.protocol import common, completions, errors
from llmserver_runtime.server import disconnect, generation, sse, state
from llmserver_runtime.server.routes import common as route_common

router = fastapi.APIRouter()


def _prompts(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise errors.invalid_request("prompt must not be empty.", "prompt")
    if all(isinstance(item, str) for item in prompt):
        return list(prompt)  # type: ignore[arg-type]
    raise errors.invalid_request("Token-id prompts are not supported; send text.", "prompt", "unsupported_parameter")


@router.post("/v1/completions")
async def create_completion(body: completions.CompletionRequest, request: requests.Request) -> responses.Response:
    """Text completion for each prompt (n choices each), streamed or whole."""
    arrived = time.perf_counter()
    runtime = state.of(request)
    gate = runtime.check(body.model, base.Capability.TEXT_GENERATION)
    route_common.refuse_if(body.logprobs is not None, "logprobs", "logprobs")
    route_common.refuse_if(body.suffix is not None, "suffix", "suffix (fill-in-the-middle)")
    prompts = _prompts(body.prompt)
    starts = [
        functools.partial(
            runtime.backend.complete,
            prompt,
            route_common.sampling(
                max_tokens=body.max_tokens,
                temperature=body.temperature,
                top_p=body.top_p,
                stop=body.stop,
                seed=body.seed,
                choice=k,
            ),
        )
        for prompt in prompts
        for k in range(body.n)
    ]
    prefixes = [prompt for prompt in prompts for _ in range(body.n)] if body.echo else None
    gen = generation.Generation(
        runtime, starts, n_per_prompt=body.n, stop=common.stop_list(body.stop), arrived=arrived, param="prompt"
    )
    response_id, created = route_common.new_id("cmpl"), route_common.now()
    async with disconnect.cancel_on_disconnect(request):
        await gen.start(gate)
        if body.stream:
            writer = sse.ChunkWriter(response_id, created, runtime.model, "text_completion")
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return sse.EventStreamResponse(
                sse.events(request, gen, writer, include_usage=include_usage, param="prompt", prefixes=prefixes),
                sse.closer(request, gen),
            )
        try:
            results = await gen.collect()
        finally:
            gen.close()
    completion = completions.Completion(
        id=response_id,
        created=created,
        model=runtime.model,
        choices=[
            completions.CompletionChoice(index=i, text=(prefixes[i] if prefixes else "") + text, finish_reason=reason)
            for i, (text, reason) in enumerate(results)
        ],
        usage=gen.usage(),
    )
    return route_common.json_response(completion.model_dump_json())
