"""POST /v1/rerank (the request/response shape vLLM, llama.cpp, Jina and Cohere v1 share)."""

from __future__ import annotations

import fastapi
import llmserver_api
from llmserver_backends import base
from starlette import requests, responses

from llmserver_api.protocol import rerank
from llmserver_runtime.server import disconnect, generation, request_bounds, state
from llmserver_runtime.server import errors as server_errors
from llmserver_runtime.server.routes import common as route_common

router = fastapi.APIRouter()


@router.post("/v1/rerank")
async def create_rerank(body: rerank.RerankRequest, request: requests.Request) -> responses.Response:
    """Scores every document against the query; results best first, cut to top_n."""
    runtime = state.of(request)
    gate = runtime.check(body.model, llmserver_api.Capability.RERANK)
    documents = body.texts()
    request_bounds.max_items(documents, "documents", runtime.limits.max_documents)
    request_bounds.non_empty([body.query], "query", single=True)
    request_bounds.non_empty(documents, "documents")
    try:
        async with disconnect.cancel_on_disconnect(request):
            scores = await generation.run_admitted(runtime, gate, lambda: runtime.backend.rerank(body.query, documents))
    except (base.BackendError, TimeoutError) as exc:
        about_query = isinstance(exc, base.ContextLengthExceeded) and str(exc).startswith("The query")
        raise server_errors.from_exception(exc, "query" if about_query else "documents") from exc
    runtime.metrics.tokens(scores.prompt_tokens, 0)
    order = sorted(range(len(documents)), key=lambda i: scores.scores[i], reverse=True)
    if body.top_n is not None:
        order = order[: body.top_n]
    response = rerank.RerankResponse(
        id=route_common.new_id("rerank"),
        model=runtime.model,
        results=[
            rerank.RerankResult(
                index=i,
                relevance_score=scores.scores[i],
                document=rerank.RerankDocument(text=documents[i]) if body.return_documents else None,
            )
            for i in order
        ],
        usage=rerank.RerankUsage(prompt_tokens=scores.prompt_tokens, total_tokens=scores.prompt_tokens),
    )
    return route_common.json_response(response.model_dump_json())
