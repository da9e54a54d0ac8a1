"""POST /v1/completions (legacy text completion; batches of prompts allowed)."""

from __future__ import annotations

import functools
import time

import fastapi
import llmserver_api
from starlette import requests, responses

from llmserver_api.protocol import common, completions
from llmserver_runtime.server import logprobs, request_bounds, state
from llmserver_runtime.server.routes import common as route_common
from llmserver_runtime.server.routes import generate

router = fastapi.APIRouter()

KIND = generate.Kind(param="prompt", id_prefix="cmpl", chunk_object="text_completion")


def _whole(
    prefixes: list[str] | None,
    with_logprobs: bool,
    response_id: str,
    created: int,
    model: str,
    results: generate.Results,
    usage: common.Usage,
    fingerprint: str,
) -> completions.Completion:
    choices = []
    for i, result in enumerate(results):
        prefix = prefixes[i] if prefixes else ""
        choices.append(
            completions.CompletionChoice(
                index=i,
                text=prefix + result.text,
                finish_reason=result.finish_reason,
                logprobs=logprobs.completion_logprobs(result.logprobs, len(prefix)) if with_logprobs else None,
            )
        )
    return completions.Completion(
        id=response_id, created=created, model=model, system_fingerprint=fingerprint, choices=choices, usage=usage
    )


@router.post("/v1/completions")
async def create_completion(body: completions.CompletionRequest, request: requests.Request) -> responses.Response:
    """Text completion for each prompt (n choices each), streamed or whole."""
    arrived = time.perf_counter()
    runtime = state.of(request)
    gate = runtime.check(body.model, llmserver_api.Capability.TEXT_GENERATION)
    prompts = request_bounds.batch(body.prompt, "prompt", runtime.limits.max_inputs, "prompts are")
    prefixes = [prompt for prompt in prompts for _ in range(body.n)] if body.echo else None
    return await generate.respond(
        request, runtime, gate, body, runtime.backend.complete, len(prompts), functools.partial(generate.ready, prompts),
        max_tokens=body.max_tokens, arrived=arrived, kind=KIND,
        whole=functools.partial(_whole, prefixes, body.logprobs is not None), prefixes=prefixes,
    )  # fmt: skip
