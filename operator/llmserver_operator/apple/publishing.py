"""Pure builders that make a Mac's runtime look like any other backend to the gateway.

A selector-less Service `N` plus an EndpointSlice `N-apple` pointing at the Mac's address and the
runtime's port: the gateway discovers it exactly like a pod's EndpointSlice (docs/contracts.md).
The per-node API key the Mac runtimes require is named by an annotation on the slice, so the
gateway can read it from the node's Secret without knowing anything about Macs.
"""

from __future__ import annotations

import ipaddress

import llmserver_api

from llmserver_operator.builders import common

SLICE_MANAGER = "llmserver-operator"
NODE_LABEL = "serving.llmserver.dev/apple-node"
API_KEY_SECRET_ANNOTATION = "serving.llmserver.dev/endpoint-api-key-secret"
API_KEY_SECRET_KEY = "api-key"


def slice_name(server: llmserver_api.LLMServer) -> str:
    """The EndpointSlice of an Apple-placed server."""
    return f"{common.name_of(server)}-apple"


def key_secret_name(node: str) -> str:
    """The Secret (in the agents' namespace) holding a Mac's runtime API key under `api-key`."""
    return f"applenode-{node}-key"


def build_apple_service(server: llmserver_api.LLMServer) -> common.Manifest:
    """Service `N` without a selector: its endpoints come from the slice below, not from pods."""
    name = common.name_of(server)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(server, name, "runtime"),
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}], "type": "ClusterIP"},
    }


def build_apple_endpoint_slice(
    server: llmserver_api.LLMServer, node: str, address: str, port: int, ready: bool, agent_namespace: str
) -> common.Manifest:
    """EndpointSlice `N-apple`: one endpoint, the Mac, ready only when its runtime and heartbeat are."""
    meta = common.metadata(server, slice_name(server), "runtime")
    meta["labels"] = dict(sorted({
        **meta["labels"],
        "kubernetes.io/service-name": common.name_of(server),
        "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER,
        NODE_LABEL: node,
    }.items()))
    meta["annotations"] = {API_KEY_SECRET_ANNOTATION: f"{agent_namespace}/{key_secret_name(node)}"}
    family = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": family,
        "endpoints": [{
            "addresses": [address],
            "conditions": {"ready": ready, "serving": ready, "terminating": False},
        }],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }
