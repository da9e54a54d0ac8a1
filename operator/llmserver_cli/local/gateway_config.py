"""The gateway's static config (docs/contracts.md, "Gateway static config"), built purely from what
local mode knows, and written atomically so the gateway never reads half a file."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
from typing import Any

import yaml


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One runtime (or the wake-up proxy of an unloaded model) the gateway may send requests to."""

    url: str
    ready: bool


@dataclasses.dataclass(frozen=True)
class Upstream:
    """A proxy-mode provider; the key is read by the gateway from env `api_key_env`, never written here."""

    url: str
    model: str
    api_key_env: str | None = None


@dataclasses.dataclass(frozen=True)
class Hold:
    """spec.autoscaling's gateway side: hold a request while no endpoint is ready (0 s: do not
    hold), at most `max_held_requests` at once, or send it to `fallback` meanwhile."""

    hold_seconds: int
    max_held_requests: int
    fallback: str | None = None


@dataclasses.dataclass(frozen=True)
class Route:
    """Everything the gateway needs for one served model name; `wake_url` is POSTed by the
    gateway when a request finds no ready endpoint (the model starts loading)."""

    model: str
    policy: str = "LeastOutstanding"
    endpoints: tuple[Endpoint, ...] = ()
    upstream: Upstream | None = None
    hold: Hold | None = None
    wake_url: str | None = None
    adapters: tuple[str, ...] = ()  # spec.adapters: each also served as `<model>:<adapter>`


def build(routes: list[Route]) -> dict[str, Any]:
    """The config dict, models sorted by name so an unchanged state gives an identical file."""
    models: list[dict[str, Any]] = []
    for route in sorted(routes, key=lambda r: r.model):
        entry: dict[str, Any] = {"name": route.model}
        if route.upstream is not None:
            upstream: dict[str, Any] = {"url": route.upstream.url, "model": route.upstream.model}
            if route.upstream.api_key_env:
                upstream["apiKeyEnv"] = route.upstream.api_key_env
            entry["upstream"] = upstream
        else:
            entry["policy"] = route.policy
            entry["endpoints"] = [{"url": e.url, "ready": e.ready} for e in route.endpoints]
        if route.hold is not None:
            hold: dict[str, Any] = {
                "holdSeconds": route.hold.hold_seconds, "maxHeldRequests": route.hold.max_held_requests
            }
            if route.hold.fallback:
                hold["fallback"] = route.hold.fallback
            entry["autoscaling"] = hold
        if route.wake_url:
            entry["wakeUrl"] = route.wake_url
        if route.adapters:
            entry["adapters"] = list(route.adapters)
        models.append(entry)
    return {"models": models}


def write(path: pathlib.Path, config: dict[str, Any]) -> bool:
    """Writes `config` to `path` by rename (atomic); returns False when the file already said so."""
    text = yaml.safe_dump(config, sort_keys=False)
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".gateway-", suffix=".yaml")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return True
