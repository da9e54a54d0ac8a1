"""GET /v1/models and /v1/models/{model}: the base model, then each loaded LoRA adapter as
`<model>:<name>` with the base model as `parent` and `root` (vLLM's shape)."""

from __future__ import annotations

import fastapi
import llmserver_api
from starlette import requests, responses

from llmserver_api.protocol import models
from llmserver_runtime.server import state
from llmserver_runtime.server.routes import common as route_common

router = fastapi.APIRouter()
# What an adapter's entry leaves out: adapters serve chat and completions only.
_BASE_ONLY = frozenset({llmserver_api.Capability.EMBEDDINGS.value, llmserver_api.Capability.RERANK.value})


def _model(runtime: state.Runtime, adapter: str | None = None) -> models.Model:
    capabilities = sorted(c.value for c in runtime.backend.capabilities) if runtime.ready else None
    if adapter is not None and capabilities is not None:
        capabilities = [c for c in capabilities if c not in _BASE_ONLY]
    return models.Model(
        id=runtime.model if adapter is None else runtime.adapters.model_name(adapter),
        created=runtime.created,
        capabilities=capabilities,
        max_model_len=runtime.backend.context_length if runtime.ready else None,
        parent=None if adapter is None else runtime.model,
        root=None if adapter is None else runtime.model,
    )


@router.get("/v1/models")
async def list_models(request: requests.Request) -> responses.Response:
    """This server's model and its adapters (listed while loading too, so clients can discover them)."""
    runtime = state.of(request)
    listing = [_model(runtime)] + [_model(runtime, name) for name in runtime.adapters.names()]
    return route_common.json_response(models.ModelList(data=listing).model_dump_json())


@router.get("/v1/models/{model:path}")
async def get_model(model: str, request: requests.Request) -> responses.Response:
    """One model by name; 404 with param "model" for any other name."""
    runtime = state.of(request)
    adapter = runtime.adapters.resolve(model)
    return route_common.json_response(_model(runtime, adapter).model_dump_json())
