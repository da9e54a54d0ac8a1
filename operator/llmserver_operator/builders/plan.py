"""Which children an LLMServer has, by where it runs. Used by the reconciler and `llmserver render`."""

from __future__ import annotations

import enum

import llmserver_api

from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import cache, common, deployment, download, engine_args, service


class Placement(str, enum.Enum):
    """Where a server's model runs, which decides its children."""

    KUBERNETES = "Kubernetes"  # download Job + Deployment + Service
    PROXY = "Proxy"  # nothing: the gateway forwards to the provider
    APPLE = "Apple"  # a registered Mac (placement is done by the apple/ package)


def placement(spec: llmserver_api.LLMServerSpec) -> Placement:
    """Proxy mode, mlx/mlx-vlm (or an explicit spec.apple) on Macs, everything else on the cluster."""
    if spec.mode == llmserver_api.Mode.PROXY:
        return Placement.PROXY
    backend = engine_args.resolve_backend(spec)
    if backend in (llmserver_api.Backend.MLX, llmserver_api.Backend.MLX_VLM) or spec.apple is not None:
        return Placement.APPLE
    return Placement.KUBERNETES


def download_children(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> list[common.Manifest]:
    """ServiceAccount, Role, RoleBinding, cache PVC and Job of a Hugging Face source, in apply order."""
    if not download.needs_download(server):
        return []
    return [
        download.build_download_service_account(server, settings),
        download.build_download_role(server, settings),
        download.build_download_role_binding(server, settings),
        cache.build_cache_pvc(server, settings),
        download.build_download_job(server, settings),
    ]


def all_children(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> list[common.Manifest]:
    """Every object the operator writes for this server once its model is downloaded."""
    if placement(server.spec) != Placement.KUBERNETES:
        return []
    return [
        *download_children(server, settings),
        deployment.build_deployment(server, settings),
        service.build_service(server, settings),
    ]
