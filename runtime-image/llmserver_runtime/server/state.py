"""Per-app state: the backend, its settings, metrics and admission control (lives on app.state)."""

from __future__ import annotations

import logging
import time

import llmserver_api
from llmserver_backends import base
from starlette import requests

from llmserver_api.protocol import errors
from llmserver_runtime.server import adapters, admission, images, limits, metrics, settings

log = logging.getLogger("llmserver.runtime")


class Runtime:
    """Everything a route needs, created by the app factory; no module globals."""

    def __init__(
        self,
        config: settings.ServeSettings,
        backend: base.ModelBackend,
        metrics_: metrics.RuntimeMetrics,
        input_limits: limits.InputLimits | None = None,
    ):
        self.settings = config
        self.limits = input_limits or limits.InputLimits()
        self.backend = backend
        self.metrics = metrics_
        self.metrics.track_batching(lambda: _passes_by_rows(backend))
        self.model = config.served_model_name
        self.created = int(time.time())
        self.ready = False
        self.admission: admission.Admission | None = None
        self.images = images.ImageLoader(config)
        self.adapters = adapters.Adapters(
            backend, self.model, adapters.trusted_root(config.model, config.adapter_root)
        )

    def mark_loaded(self) -> None:
        """Size admission from the loaded backend (vLLM only knows its limit after load)."""
        limit = self.backend.max_concurrency
        if self.settings.max_concurrency is not None:
            limit = min(limit, self.settings.max_concurrency)
        self.admission = admission.Admission(max(1, limit), self.settings.max_queue)
        a = self.admission
        self.metrics.track_admission(lambda: a.waiting, lambda: a.running, a.max_concurrency)

    def mark_ready(self) -> None:
        """Loaded and warmed up: /ready answers 200 and /v1 accepts work."""
        self.ready = True
        self.metrics.ready.set(1)

    def check(self, model: str, capability: llmserver_api.Capability, param: str | None = None) -> admission.Admission:
        """Refuse work that this server cannot do; returns the admission controller to queue on."""
        if not self.ready or self.admission is None:
            raise errors.unavailable(f"The model `{self.model}` is still loading.", retry_after_s=5)
        adapter = self.adapters.resolve(model)  # 404 model_not_found for any other name
        self.require(capability, param)
        self.adapters.require_generation(adapter, capability)
        return self.admission

    def require(self, capability: llmserver_api.Capability, param: str | None = None) -> None:
        """400 naming the capability when the loaded model lacks it."""
        if capability not in self.backend.capabilities:
            raise errors.capability_missing(self.model, capability.value, param)


def of(request: requests.Request) -> Runtime:
    """The Runtime of the app serving `request`."""
    return request.app.state.runtime


def _passes_by_rows(backend: base.ModelBackend) -> dict[int, int] | None:
    stats = backend.batch_stats
    return stats.passes_by_rows if stats is not None else None
