"""Request metrics for every /v1 endpoint, errors included, as a pure ASGI middleware (Starlette's
BaseHTTPMiddleware would buffer streams and cost a task per request)."""

from __future__ import annotations

import time

from starlette import types

from llmserver_runtime.server import metrics, sse

ENDPOINTS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/rerank": "rerank",
    "/v1/models": "models",
}


def endpoint_of(path: str) -> str | None:
    """The `endpoint` label for a path, or None for paths that are not counted."""
    if path in ENDPOINTS:
        return ENDPOINTS[path]
    if path.startswith("/v1/models/"):
        return "models"
    if path.startswith("/v1/"):
        return "other"
    return None


class RequestMetrics:
    """Counts each /v1 request with its final status and observes its end-to-end latency."""

    def __init__(self, app: types.ASGIApp, runtime_metrics: metrics.RuntimeMetrics) -> None:
        self.app = app
        self.metrics = runtime_metrics

    async def __call__(self, scope: types.Scope, receive: types.Receive, send: types.Send) -> None:
        endpoint = endpoint_of(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: types.Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.metrics.request_done(endpoint, scope.get(sse.OUTCOME, status), time.perf_counter() - started)
