"""The model cache PVC. Shared by LLMServers that name the same claim, so it is only ever created,
never patched, and owned by an LLMServer only when its spec asks to delete the cache with it."""

from __future__ import annotations

import llmserver_api

from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import common


def build_cache_pvc(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> common.Manifest:
    """Claim from spec.cache, falling back to the operator's cache defaults."""
    cache = server.spec.cache
    spec: common.Manifest = {
        "accessModes": [cache.access_mode or settings.cache_access_mode],
        "resources": {"requests": {"storage": cache.size or settings.cache_size}},
    }
    storage_class = cache.storage_class_name or settings.cache_storage_class
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": common.metadata(server, common.cache_claim_name(server, settings), "cache"),
        "spec": spec,
    }


def owned_by_server(server: llmserver_api.LLMServer) -> bool:
    """Whether the claim is deleted with the LLMServer (only one it created: see the reconciler)."""
    return server.spec.cache.delete_on_server_delete
