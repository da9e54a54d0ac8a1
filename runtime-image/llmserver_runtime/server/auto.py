"""`serve --backend auto`: the engine, the file to load and the capabilities, from the model's files.

The runtime decides with the same pure detection the operator and `llmserver inspect` use
(`llmserver_api.detection`), on its own machine's hardware: it sees the files at start, so a model
whose format the operator could not see (a PVC source) is still decided here. When the files do
not settle it, serving stops with detection's one-line reason instead of guessing an engine.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import platform

from llmserver_api import detection

from llmserver_runtime.server import settings as settings_mod


class Undecided(Exception):
    """The files do not say which engine serves them; the message is detection's reason."""


@dataclasses.dataclass(frozen=True)
class Choice:
    """What `auto` became: settings to serve with (model path, capabilities) and the engine."""

    config: settings_mod.ServeSettings
    backend: str
    reason: str


def gpu_count(environ: dict[str, str] | None = None, devices: str = "/dev/nvidia[0-9]*") -> int:
    """NVIDIA GPUs this process may use: the device files the device plugin mounts, narrowed by
    CUDA_VISIBLE_DEVICES when set. No torch import: the llama.cpp image has none."""
    env = os.environ if environ is None else environ
    found = len(glob.glob(devices))
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return found
    listed = [item for item in visible.split(",") if item.strip() and item.strip() != "-1"]
    return min(found, len(listed))


def choose(config: settings_mod.ServeSettings, gpus: int | None = None) -> Choice:
    """The concrete backend for `config` (unchanged when it is not `auto`). Raises Undecided."""
    if config.backend != "auto":
        return Choice(config, config.backend, "")
    try:
        model = detection.local_model_files(config.model)
    except FileNotFoundError as exc:
        raise Undecided(str(exc)) from None
    hardware = detection.hardware_of_machine(platform.system(), platform.machine(),
                                             gpu_count() if gpus is None else gpus)
    found = detection.detect(model, hardware)
    if not found.decided or found.backend is None:
        raise Undecided(found.reason)
    update: dict[str, object] = {"backend": found.backend.value}
    path = pathlib.Path(config.model)
    if found.model_file and path.is_dir():
        update["model"] = str(path / found.model_file)
    if not config.capabilities and found.capabilities:
        update["capabilities"] = ",".join(capability.value for capability in found.capabilities)
    return Choice(config.model_copy(update=update), found.backend.value, found.reason)
