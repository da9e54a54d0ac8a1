"""The app factory: one FastAPI app around one backend, loaded in the background.

The process listens at once (/health 200) while the model loads; /ready turns 200 after load and
warm-up. A load failure is logged with its cause and reported to `on_load_failure` (the CLI then
stops the server and exits non-zero so Kubernetes shows the failure)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable

import fastapi
from llmserver_backends import base
from starlette import requests, responses

from llmserver_runtime.server import auth, body_guard, disconnect, errors, limits, metrics, middleware, settings, state
from llmserver_runtime.server.routes import adapters, chat, completions, embeddings, health, models, rerank
from llmserver_runtime.server.routes import responses as responses_api

log = logging.getLogger("llmserver.runtime")


async def load_model(runtime: state.Runtime, on_failure: Callable[[BaseException], None] | None) -> None:
    """Load, then warm up, then mark ready; report a failure instead of raising it."""
    backend, model = runtime.backend, runtime.model
    try:
        log.info("loading model %s with the %s backend from %s", model, backend.kind, runtime.settings.model)
        started = time.perf_counter()
        await backend.load()
        load_s = time.perf_counter() - started
        runtime.metrics.loaded(load_s)
        runtime.mark_loaded()
        started = time.perf_counter()
        await backend.warm_up()
        runtime.mark_ready()
        log.info(
            "model %s ready: load %.2fs, warm-up %.2fs, capabilities %s, max concurrency %d, context %s",
            model,
            load_s,
            time.perf_counter() - started,
            ",".join(sorted(c.value for c in backend.capabilities)),
            runtime.admission.max_concurrency if runtime.admission else 0,
            backend.context_length,
        )
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # any load failure must end the process clearly
        log.critical("loading model %s (%s backend) failed: %s: %s", model, backend.kind, type(exc).__name__, exc)
        log.debug("load failure traceback", exc_info=exc)
        if on_failure is not None:
            on_failure(exc)


async def _client_gone(_: requests.Request, __: Exception) -> responses.Response:
    return responses.Response(status_code=499)  # nobody reads it; the metrics book it as 499


def create_app(
    config: settings.ServeSettings,
    backend: base.ModelBackend,
    *,
    on_load_failure: Callable[[BaseException], None] | None = None,
    input_limits: limits.InputLimits | None = None,
) -> fastapi.FastAPI:
    """The runtime app; loading starts when the app starts (lifespan). `input_limits` default to
    the env's (`LLMSERVER_MAX_BODY_BYTES`, ...; see server/limits.py)."""
    bounds = input_limits or limits.InputLimits.from_env(os.environ)
    runtime = state.Runtime(config, backend, metrics.RuntimeMetrics(config.served_model_name, backend.kind), bounds)

    @contextlib.asynccontextmanager
    async def lifespan(_: fastapi.FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(load_model(runtime, on_load_failure))
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            await runtime.images.close()
            try:
                await backend.unload()
            except Exception:  # shutting down anyway
                log.exception("unloading the model failed")

    app = fastapi.FastAPI(title="llmserver runtime", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    errors.install(app)
    app.add_exception_handler(disconnect.ClientDisconnected, _client_gone)
    v1 = [fastapi.Depends(auth.require_api_key)]
    for module in (chat, completions, embeddings, rerank, models, responses_api, adapters):
        app.include_router(module.router, dependencies=v1)
    app.include_router(health.router)
    app.add_middleware(body_guard.BodyGuard, input_limits=bounds)  # inside the metrics: 413s are counted
    app.add_middleware(middleware.RequestMetrics, runtime_metrics=runtime.metrics)
    return app
