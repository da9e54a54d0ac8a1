"""Which children an LLMServer has, by where it runs. Used by the reconciler and `llmserver render`."""

from __future__ import annotations

import dataclasses
import enum

import llmserver_api

from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import adapters, cache, common, deployment, download, network_policy, service


class Placement(str, enum.Enum):
    """Where a server's model runs, which decides its children."""

    KUBERNETES = "Kubernetes"  # download Job + Deployment + Service + NetworkPolicy
    PROXY = "Proxy"  # nothing: the gateway forwards to the provider
    APPLE = "Apple"  # a registered Mac (placement is done by the apple/ package)


def placement(spec: llmserver_api.LLMServerSpec) -> Placement:
    """Proxy mode, mlx/mlx-vlm (or an explicit spec.apple) on Macs, everything else on the cluster."""
    if spec.mode == llmserver_api.Mode.PROXY:
        return Placement.PROXY
    backend = spec.backend
    if backend in (llmserver_api.Backend.MLX, llmserver_api.Backend.MLX_VLM) or spec.apple is not None:
        return Placement.APPLE
    return Placement.KUBERNETES


@dataclasses.dataclass(frozen=True)
class DownloadChildren:
    """What a Hugging Face source needs before the runtime can start, grouped by how each is written.

    The one list of download children: `llmserver render` prints `in_apply_order()`, and the
    reconciler applies `identity`, creates `cache` once and `job` as an immutable Job, so the two
    cannot drift apart.
    """

    identity: tuple[common.Manifest, ...]  # ServiceAccount, Role, RoleBinding: kept up to date
    cache: common.Manifest  # the model cache PVC: created when missing, never patched
    job: common.Manifest  # the download Job: its pod template is immutable

    def in_apply_order(self) -> list[common.Manifest]:
        """Identity first (the Job's pod runs as it), then the claim, then the Job."""
        return [*self.identity, self.cache, self.job]


def download_children(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> DownloadChildren | None:
    """The download children of a Hugging Face source; None for a source used in place (a PVC)."""
    if not download.needs_download(server):
        return None
    return DownloadChildren(
        identity=(
            download.build_download_service_account(server, settings),
            download.build_download_role(server, settings),
            download.build_download_role_binding(server, settings),
        ),
        cache=cache.build_cache_pvc(server, settings),
        job=download.build_download_job(server, settings),
    )


@dataclasses.dataclass(frozen=True)
class AdapterChildren:
    """The download Jobs of spec.adapters (builders.adapters), with the identity they run as and the
    cache claim they write (None when the model is read from the user's own claim: never created)."""

    identity: tuple[common.Manifest, ...]
    cache: common.Manifest | None
    jobs: tuple[common.Manifest, ...]


def adapter_children(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> AdapterChildren | None:
    """The download children of the adapters to download; None when there is none."""
    wanted = [a for a in server.spec.adapters if adapters.needs_download(a)]
    if not wanted:
        return None
    return AdapterChildren(
        identity=(
            download.build_download_service_account(server, settings),
            download.build_download_role(server, settings),
            download.build_download_role_binding(server, settings),
        ),
        cache=cache.build_cache_pvc(server, settings) if download.needs_download(server) else None,
        jobs=tuple(adapters.build_adapter_job(server, a, settings) for a in wanted),
    )


def all_children(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> list[common.Manifest]:
    """Every object the operator writes for this server once its model and adapters are downloaded."""
    if placement(server.spec) != Placement.KUBERNETES:
        return []
    downloading = download_children(server, settings)
    adapter_jobs = adapter_children(server, settings)
    policy = network_policy.build_network_policy(server, settings)
    return [
        *(downloading.in_apply_order() if downloading else
          [*adapter_jobs.identity, *([adapter_jobs.cache] if adapter_jobs.cache else [])] if adapter_jobs else []),
        *(adapter_jobs.jobs if adapter_jobs else ()),
        deployment.build_deployment(server, settings),
        service.build_service(server, settings),
        *([policy] if policy else []),
    ]
