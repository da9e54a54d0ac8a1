"""GET /v1/models and /v1/models/{model}."""

from __future__ import annotations

import fastapi
from starlette import requests, responses

from llmserver_api.protocol import errors, models
from llmserver_runtime.server import state
from llmserver_runtime.server.routes import common as route_common

router = fastapi.APIRouter()


def _model(runtime: state.Runtime) -> models.Model:
    capabilities = sorted(c.value for c in runtime.backend.capabilities) if runtime.ready else None
    return models.Model(
        id=runtime.model,
        created=runtime.created,
        capabilities=capabilities,
        max_model_len=runtime.backend.context_length if runtime.ready else None,
    )


@router.get("/v1/models")
async def list_models(request: requests.Request) -> responses.Response:
    """The one model this server serves (listed while loading too, so clients can discover it)."""
    runtime = state.of(request)
    return route_common.json_response(models.ModelList(data=[_model(runtime)]).model_dump_json())


@router.get("/v1/models/{model:path}")
async def get_model(model: str, request: requests.Request) -> responses.Response:
    """One model by name; 404 with param "model" for any other name."""
    runtime = state.of(request)
    if model != runtime.model:
        raise errors.model_not_found(model)
    return route_common.json_response(_model(runtime).model_dump_json())
