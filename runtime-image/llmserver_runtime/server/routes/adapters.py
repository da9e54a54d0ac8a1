"""POST /v1/load_lora_adapter and /v1/unload_lora_adapter: vLLM's endpoints and bodies, for
engines that load adapters while the model stays loaded (the operator calls them on each replica).

Both sit behind the API key like every /v1 route; a path outside the trusted tree is refused
(server/adapters.py). Engines that load adapters only at start answer 400 naming why."""

from __future__ import annotations

import fastapi
import pydantic
from llmserver_backends import base
from starlette import requests, responses

from llmserver_api.protocol import errors
from llmserver_runtime.server import errors as server_errors
from llmserver_runtime.server import state

router = fastapi.APIRouter()


class LoadLoRAAdapterRequest(pydantic.BaseModel):
    """vLLM's load body."""

    lora_name: str = pydantic.Field(min_length=1, description="Adapter name; served as `<model>:<name>`.")
    lora_path: str = pydantic.Field(min_length=1, description="Absolute path of the adapter, under the trusted root.")
    load_inplace: bool = pydantic.Field(default=False, description="Replace a loaded adapter of that name.")


class UnloadLoRAAdapterRequest(pydantic.BaseModel):
    """vLLM's unload body (`lora_int_id` is accepted and ignored: names identify adapters here)."""

    lora_name: str = pydantic.Field(min_length=1, description="The adapter to remove.")
    lora_int_id: int | None = pydantic.Field(default=None, description="Ignored (vLLM compatibility).")


def _require_ready(runtime: state.Runtime) -> None:
    if not runtime.ready:
        raise errors.unavailable(f"The model `{runtime.model}` is still loading.", retry_after_s=5)


@router.post("/v1/load_lora_adapter")
async def load_lora_adapter(body: LoadLoRAAdapterRequest, request: requests.Request) -> responses.Response:
    """Loads one adapter; 200 with vLLM's plain-text success line."""
    runtime = state.of(request)
    _require_ready(runtime)
    try:
        message = await runtime.adapters.load(body.lora_name, body.lora_path, inplace=body.load_inplace)
    except base.BackendError as exc:
        raise server_errors.from_exception(exc, "lora_path") from exc
    return responses.PlainTextResponse(message)


@router.post("/v1/unload_lora_adapter")
async def unload_lora_adapter(body: UnloadLoRAAdapterRequest, request: requests.Request) -> responses.Response:
    """Removes one adapter; 404 when it is not loaded."""
    runtime = state.of(request)
    _require_ready(runtime)
    try:
        message = await runtime.adapters.unload(body.lora_name)
    except base.BackendError as exc:
        raise server_errors.from_exception(exc, "lora_name") from exc
    return responses.PlainTextResponse(message)
