"""NetworkPolicy `N`: only the gateway, the operator and Prometheus reach a server's runtime pods.

The operator writes it next to the pods it protects, so every namespace it reconciles is covered
(the chart cannot know them in a cluster-wide install). Ingress only: downloads need egress.
"""

from __future__ import annotations

import copy

import llmserver_api

from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import common


def build_network_policy(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> common.Manifest | None:
    """Ingress to the runtime pods' http port from `settings.network_policy_peers` only; None when
    `settings.network_policy` is off. No peers admits nobody (an empty `from` would admit everyone)."""
    if not settings.network_policy:
        return None
    peers = copy.deepcopy(settings.network_policy_peers)
    rules = [{"from": peers, "ports": [{"port": common.HTTP_PORT, "protocol": "TCP"}]}] if peers else []
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": common.metadata(server, common.name_of(server), "runtime"),
        "spec": {
            "podSelector": {"matchLabels": common.selector(server)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }
