"""POST /v1/embeddings."""

from __future__ import annotations

import base64
import struct

import fastapi
import llmserver_api
from llmserver_backends import base
from starlette import requests, responses

from llmserver_api.protocol import embeddings, errors
from llmserver_runtime.server import disconnect, generation, request_bounds, state
from llmserver_runtime.server import errors as server_errors
from llmserver_runtime.server.routes import common as route_common

router = fastapi.APIRouter()


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # what the openai SDK asks for by default
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


@router.post("/v1/embeddings")
async def create_embeddings(body: embeddings.EmbeddingRequest, request: requests.Request) -> responses.Response:
    """Embeds a batch of texts, vectors in input order."""
    runtime = state.of(request)
    gate = runtime.check(body.model, llmserver_api.Capability.EMBEDDINGS)
    texts = request_bounds.batch(body.input, "input", runtime.limits.max_inputs, "input is")
    request_bounds.non_empty(texts, "input", single=isinstance(body.input, str))
    try:
        async with disconnect.cancel_on_disconnect(request):
            result = await generation.run_admitted(runtime, gate, lambda: runtime.backend.embed(texts))
    except (base.BackendError, TimeoutError) as exc:
        raise server_errors.from_exception(exc, "input") from exc
    if body.dimensions is not None and result.vectors and body.dimensions != len(result.vectors[0]):
        raise errors.invalid_request(
            f"This model produces {len(result.vectors[0])}-dimensional embeddings; dimensions={body.dimensions} "
            "is not supported.",
            "dimensions",
        )
    runtime.metrics.tokens(result.prompt_tokens, 0)
    response = embeddings.EmbeddingResponse(
        data=[
            embeddings.Embedding(index=i, embedding=_encode(vector, body.encoding_format))
            for i, vector in enumerate(result.vectors)
        ],
        model=runtime.model,
        usage=embeddings.EmbeddingUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
    )
    return route_common.json_response(response.model_dump_json())
