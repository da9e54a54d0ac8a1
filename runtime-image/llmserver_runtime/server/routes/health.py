"""Probes and metrics: /health (alive), /ready (loaded and warmed up), /metrics (Prometheus)."""

from __future__ import annotations

import fastapi
from starlette import requests, responses

from llmserver_runtime.server import metrics, state

router = fastapi.APIRouter()


@router.get("/health")
async def health() -> responses.Response:
    """200 as soon as the process listens (liveness)."""
    return responses.JSONResponse({"status": "ok"})


@router.get("/ready")
async def ready(request: requests.Request) -> responses.Response:
    """200 only after the model loaded and warmed up (readiness); 503 before."""
    runtime = state.of(request)
    if runtime.ready:
        return responses.JSONResponse({"status": "ready", "model": runtime.model})
    return responses.JSONResponse({"status": "loading", "model": runtime.model}, status_code=503)


@router.get("/metrics")
async def prometheus(request: requests.Request) -> responses.Response:
    """Prometheus exposition of this runtime's registry."""
    return responses.Response(state.of(request).metrics.render(), media_type=metrics.CONTENT_TYPE)
