"""Runtime image flavours, and the pure choice of one for each LLMServer.

One image cannot carry every engine for every accelerator (vLLM's CUDA wheels alone are ~10 GB,
and a CPU cluster should not pull them), so the runtime ships as flavours: engines x accelerator.
The operator picks the flavour from the resolved backend and the GPU resource the pods request;
`spec.image` overrides the choice for one server. Where nothing fits, no pod is created and the
server says why (`NoRuntimeImage`), naming the chart value to set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import llmserver_api
import pydantic

REASON = "NoRuntimeImage"
CHART_VALUE = "runtime.images"
RUNTIME_REPOSITORY = "ghcr.io/llmserver/llmserver-runtime"
CUDA_REPOSITORY = "ghcr.io/llmserver/llmserver-runtime-cuda"
DEFAULT_TAG = "0.1.0"


class NoRuntimeImage(ValueError):
    """Raised by a builder asked for pods that no image can run (callers check `choose` first)."""


class Flavour(pydantic.BaseModel):
    """One runtime image: the engines it carries and the accelerators it serves."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    image: str = pydantic.Field(
        "", description="Full image reference (repository:tag or repository@sha256:...); empty: declared, not built."
    )
    engines: tuple[llmserver_api.Backend, ...] = pydantic.Field(
        ..., min_length=1, description="Backends (spec.backend values) the image can run."
    )
    accelerators: tuple[str, ...] = pydantic.Field(
        (), description="GPU extended resources it serves (e.g. nvidia.com/gpu); empty: CPU-only pods."
    )

    @pydantic.field_validator("engines")
    @classmethod
    def _no_auto(cls, engines: tuple[llmserver_api.Backend, ...]) -> tuple[llmserver_api.Backend, ...]:
        if llmserver_api.Backend.AUTO in engines:
            raise ValueError("auto is not an engine: list the backends the image carries")
        return engines


def default_catalog() -> dict[str, Flavour]:
    """`cpu` (llama-cpp, transformers on CPU torch) and `cuda` (vLLM, transformers, llama-cpp on CUDA)."""
    backend = llmserver_api.Backend
    return {
        "cpu": Flavour(image=f"{RUNTIME_REPOSITORY}:{DEFAULT_TAG}", engines=(backend.LLAMA_CPP, backend.TRANSFORMERS)),
        "cuda": Flavour(
            image=f"{CUDA_REPOSITORY}:{DEFAULT_TAG}",
            engines=(backend.VLLM, backend.TRANSFORMERS, backend.LLAMA_CPP),
            accelerators=("nvidia.com/gpu",),
        ),
    }


@dataclasses.dataclass(frozen=True)
class Choice:
    """The image for one server's pods, or why there is none (`image` is None)."""

    image: str | None
    flavour: str | None
    reason: str

    def to_status(self) -> dict[str, str]:
        """The fields this choice adds to status.resolved (no nulls, as Kubernetes stores it)."""
        out = {"imageReason": self.reason}
        if self.image:
            out["image"] = self.image
        if self.flavour:
            out["flavour"] = self.flavour
        return out


def choose(
    server: llmserver_api.LLMServer, catalog: Mapping[str, Flavour], accelerator: str | None
) -> Choice:
    """The flavour whose engines include the server's (resolved) backend and whose accelerators
    include `accelerator` (None: a CPU pod, served by flavours without accelerators). Flavours are
    tried by name, so the choice never depends on the order settings were written in."""
    spec = server.spec
    if spec.image:
        return Choice(spec.image, None, "spec.image overrides the runtime image catalog")
    backend = llmserver_api.Backend(spec.backend)
    target = accelerator or "CPU"
    serves = [
        name
        for name, flavour in sorted(catalog.items())
        if (accelerator in flavour.accelerators if accelerator else not flavour.accelerators)
    ]
    if backend is llmserver_api.Backend.AUTO:
        # Still `auto` here only for a PVC source: the runtime decides at start, among the engines
        # of the image it runs in, so the richest image for this accelerator is the best bet.
        fitting = sorted(serves, key=lambda name: -len(catalog[name].engines))
    else:
        fitting = [name for name in serves if backend in catalog[name].engines]
    for name in fitting:
        if catalog[name].image:
            engines = ", ".join(engine.value for engine in catalog[name].engines)
            what = f"the engines the runtime chooses from ({engines})" if backend is llmserver_api.Backend.AUTO \
                else backend.value
            return Choice(catalog[name].image, name, f"flavour {name} carries {what} for {target}")
    if fitting:
        name = fitting[0]
        return Choice(None, name, f"flavour {name} carries {backend.value} for {target} but has no image: "
                                  f"set the chart value {CHART_VALUE}.{name}.repository (and tag or digest)")
    wanted = f"engines: [{backend.value}]" + (f", accelerators: [{accelerator}]" if accelerator else "")
    return Choice(None, None, f"no runtime image flavour carries the {backend.value} engine for {target}: "
                              f"add one under the chart value {CHART_VALUE} ({wanted}) or set spec.image")
