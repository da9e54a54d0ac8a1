"""Names, labels, hashes and hardening shared by every child object (see docs/contracts.md)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import llmserver_api
from llmserver_api import paths

from llmserver_operator import settings as settings_mod

Manifest = dict[str, Any]

MANAGED_BY = "llmserver-operator"
SERVER_LABEL = "serving.llmserver.dev/server"
CONFIG_HASH = "serving.llmserver.dev/config-hash"
POD_TEMPLATE_HASH = "serving.llmserver.dev/pod-template-hash"
HTTP_PORT = 8080
CACHE_VOLUME = "model-cache"


def name_of(server: llmserver_api.LLMServer) -> str:
    """The LLMServer's name; builders only see validated servers, which always carry one."""
    if not server.metadata.name:
        raise ValueError("metadata.name is required")
    return server.metadata.name


def namespace_of(server: llmserver_api.LLMServer) -> str:
    """The LLMServer's namespace (`default` when a manifest leaves it out, as kubectl does)."""
    return server.metadata.namespace or "default"


def labels(server: llmserver_api.LLMServer, component: str) -> dict[str, str]:
    """The contract labels of every child, sorted by key."""
    name = name_of(server)
    return dict(
        sorted(
            {
                "app.kubernetes.io/component": component,
                "app.kubernetes.io/instance": name,
                "app.kubernetes.io/managed-by": MANAGED_BY,
                "app.kubernetes.io/name": "llmserver-runtime",
                SERVER_LABEL: name,
            }.items()
        )
    )


def selector(server: llmserver_api.LLMServer) -> dict[str, str]:
    """Labels that pick the runtime pods of one server (never its download pods)."""
    name = name_of(server)
    return {"app.kubernetes.io/component": "runtime", "app.kubernetes.io/instance": name, SERVER_LABEL: name}


def metadata(server: llmserver_api.LLMServer, name: str, component: str) -> Manifest:
    """Object metadata in the server's namespace with the contract labels."""
    return {"name": name, "namespace": namespace_of(server), "labels": labels(server, component)}


def digest(value: Any, length: int = 16) -> str:
    """A stable hex digest of any JSON-able value (keys sorted), used for names and change detection."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def stamp_config_hash(obj: Manifest) -> Manifest:
    """Returns `obj` with the hash of its own content in an annotation: equal hash, nothing to write."""
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(CONFIG_HASH, None)
    meta["annotations"] = annotations
    annotations[CONFIG_HASH] = digest(obj)
    meta["annotations"] = dict(sorted(annotations.items()))
    return obj


def cache_claim_name(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> str:
    """The PVC holding the model: the source's own claim, else the (shared) cache claim."""
    source = server.spec.source
    if source is not None and source.pvc is not None:
        return source.pvc.claim_name
    return server.spec.cache.claim_name or settings.cache_claim_name


def model_path(server: llmserver_api.LLMServer) -> str:
    """Absolute path the runtime loads inside the container (docs/contracts.md, Model cache)."""
    source = server.spec.source
    if source is None:
        raise ValueError("spec.source is required for a self-hosted LLMServer")
    if source.pvc is not None:
        relative = source.pvc.path
    elif source.s3 is not None:
        relative = paths.s3_path(source.s3.bucket, source.s3.path, source.s3.endpoint)
    elif source.url is not None:
        relative = paths.url_path(source.url.url, source.url.sha256)
    else:
        assert source.hugging_face is not None
        hf = source.hugging_face
        relative = paths.huggingface_model_path(hf.repo, hf.revision, hf.file)
    return f"{paths.CACHE_MOUNT}/{relative}" if relative else paths.CACHE_MOUNT


def pod_security_context(settings: settings_mod.Settings) -> Manifest:
    """Non-root pod with the default seccomp profile; fsGroup lets it write the cache volume."""
    uid = settings.runtime_uid
    return {
        "fsGroup": uid,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root: bool) -> Manifest:
    """No privilege escalation, no capabilities, read-only root where the engine allows."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
    }


def env(values: dict[str, str | Manifest]) -> list[Manifest]:
    """Container env sorted by name; a dict value is a `valueFrom`."""
    out: list[Manifest] = []
    for key in sorted(values):
        value = values[key]
        out.append({"name": key, "valueFrom": value} if isinstance(value, dict) else {"name": key, "value": value})
    return out
