"""Shared by the elastic-serving tests: a gateway on a static config the test rewrites (as local
mode does when a model loads), and readers of /internal/load and /metrics."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from testkit import fake_upstreams


class Elastic:
    """The gateway process, its config file and the fakes behind it."""

    def __init__(self, gateway: fake_upstreams.Proc, path: pathlib.Path, config: dict[str, Any],
                 fakes: dict[str, fake_upstreams.Replica]) -> None:
        self.gateway = gateway
        self.path = path
        self.config = copy.deepcopy(config)
        self.fakes = fakes

    def set_ready(self, model: str, ready: bool) -> float:
        """Marks every endpoint of `model` (un)ready, replacing the file atomically, and waits until
        the gateway serves that table (its ready_endpoints gauge); returns when the file was written."""
        expected = 0
        for entry in self.config["models"]:
            if entry["name"] == model:
                for endpoint in entry["endpoints"]:
                    endpoint["ready"] = ready
                expected = len(entry["endpoints"]) if ready else 0
        written = self.write()
        key = ("llmserver_gateway_ready_endpoints", (("model", model),))
        wait_until(lambda: self.metrics().get(key) == expected, what=f"{model} ready={ready} to be applied")
        return written

    def write(self) -> float:
        """Replaces the config file atomically with `self.config`; returns when."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(self.config))
        written = time.perf_counter()
        os.replace(tmp, self.path)
        return written

    def load(self) -> dict[str, dict[str, Any]]:
        """GET /internal/load's servers."""
        with urllib.request.urlopen(self.gateway.url + "/internal/load", timeout=5) as reply:
            return json.loads(reply.read())["servers"]

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample of /metrics, keyed by (name, sorted labels)."""
        with urllib.request.urlopen(self.gateway.url + "/metrics", timeout=5) as reply:
            text = reply.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def stats(self, fake: str) -> dict[str, Any]:
        """What a fake replica saw."""
        with urllib.request.urlopen(self.fakes[fake].url + "/fake/stats", timeout=5) as reply:
            return json.loads(reply.read())


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Polls `condition` (a test's observer, not the gateway's logic) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def counts(env: Elastic, key: str) -> tuple[int, int]:
    """(inFlight, held) of one server in /internal/load (0, 0 when absent)."""
    entry = env.load().get(key) or {}
    return entry.get("inFlight", 0), entry.get("held", 0)
