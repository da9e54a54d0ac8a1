"""The ClusterIP Service `N` in front of the runtime pods; the gateway finds endpoints through it."""

from __future__ import annotations

import llmserver_api

from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import common


def build_service(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> common.Manifest:
    """Port `http` 80 → the pods' named port `http` (docs/contracts.md)."""
    del settings  # same shape for every operator configuration
    name = common.name_of(server)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(server, name, "runtime"),
        "spec": {
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
            "selector": common.selector(server),
            "type": "ClusterIP",
        },
    }
