"""Where a server's model files live on this machine (local mode and the Mac agent alike).

In a cluster `source.pvc` names a PersistentVolumeClaim; off the cluster there are no claims, so
`claimName` is read as a folder. Locally (`llmserver up`, the user's own manifests) it is any
folder: absolute, `~/...`, or relative to the manifest's own folder (`claimName: ./models`,
`path: tiny.gguf`). On a Mac agent the manifests come from every namespace of the cluster, so a
claim is a folder under the agent's `models_root` and nothing else: an absolute, `~` or `..`
claimName (or path) is refused, and the server fails with a message its status shows. A Hugging Face,
S3 or URL source lives in the local model cache at the same relative path the cluster cache uses
(llmserver_api.paths), so downloads are shared between `llmserver download-model` and `llmserver up`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import llmserver_api
import llmserver_api.paths
import llmserver_api.sources


@dataclasses.dataclass(frozen=True)
class ModelsRoot:
    """The one folder a multi-tenant host (the Mac agent) resolves `source.pvc` claims under."""

    folder: pathlib.Path


# What relative claimNames resolve against: the manifest file (local mode) or a models root.
Origin = pathlib.Path | ModelsRoot


class OutsideModelsRoot(ValueError):
    """A `source.pvc` that would leave the host's models root (the server fails with this message)."""


def under_root(root: pathlib.Path, claim_name: str, path: str = "") -> pathlib.Path:
    """`<root>/<claimName>/<path>`, refusing a claimName or path that is absolute, starts with `~`
    or climbs out with `..` (nor a hidden segment), so a manifest reaches nothing but the root."""
    for field, value in (("claimName", claim_name), ("path", path)):
        if value and not llmserver_api.paths.is_relative_path(value):
            raise OutsideModelsRoot(
                f"spec.source.pvc.{field} {value!r} must name a folder inside this host's models root "
                f"({root}): {llmserver_api.paths.SAFE_PATH_RULE}"
            )
    base = pathlib.Path(os.path.normpath(root.expanduser().absolute()))
    target = pathlib.Path(os.path.normpath(base.joinpath(claim_name, path)))
    if target == base or not target.is_relative_to(base):  # unreachable after the pattern; kept as the invariant
        raise OutsideModelsRoot(f"spec.source.pvc {claim_name!r}/{path!r} leaves this host's models root ({root})")
    return target


def pvc_path(server: llmserver_api.LLMServer, origin: Origin) -> pathlib.Path:
    """The local file or folder a `source.pvc` points at (`origin`: the manifest file, or a models root)."""
    pvc = server.spec.source.pvc if server.spec.source else None
    if pvc is None:
        raise ValueError("server has no source.pvc")
    return _claim_path(pvc, origin)


def _claim_path(pvc: llmserver_api.sources.PvcSource, origin: Origin) -> pathlib.Path:
    if isinstance(origin, ModelsRoot):
        return under_root(origin.folder, pvc.claim_name, pvc.path)
    folder = pathlib.Path(pvc.claim_name).expanduser()
    if not folder.is_absolute():
        folder = origin.parent / folder
    return (folder / pvc.path).absolute() if pvc.path else folder.absolute()


def huggingface_path(server: llmserver_api.LLMServer, cache_dir: pathlib.Path) -> pathlib.Path:
    """The path the runtime loads for a Hugging Face source, inside the local cache."""
    hf = server.spec.source.hugging_face if server.spec.source else None
    if hf is None:
        raise ValueError("server has no source.huggingFace")
    return cache_dir / llmserver_api.paths.huggingface_model_path(hf.repo, hf.revision, hf.file)


def downloaded_path(server: llmserver_api.LLMServer, cache_dir: pathlib.Path) -> pathlib.Path:
    """Where the downloader puts a huggingFace, s3 or url source in the local cache (the same
    cache-relative path as in a cluster's /models)."""
    source = server.spec.source
    if source is not None and source.s3 is not None:
        return cache_dir / llmserver_api.paths.s3_path(source.s3.bucket, source.s3.path, source.s3.endpoint)
    if source is not None and source.url is not None:
        return cache_dir / llmserver_api.paths.url_path(source.url.url, source.url.sha256)
    return huggingface_path(server, cache_dir)


def cached_path(source: llmserver_api.sources.Source, cache_dir: pathlib.Path) -> pathlib.Path | None:
    """Where a downloaded source (Hub, S3, URL) lives in the cache; None for a `pvc` one."""
    if source.hugging_face is not None:
        hf = source.hugging_face
        return cache_dir / llmserver_api.paths.huggingface_model_path(hf.repo, hf.revision, hf.file)
    if source.s3 is not None:
        return cache_dir / llmserver_api.paths.s3_path(source.s3.bucket, source.s3.path, source.s3.endpoint)
    if source.url is not None:
        return cache_dir / llmserver_api.paths.url_path(source.url.url, source.url.sha256)
    return None


def adapter_path(adapter: llmserver_api.sources.Adapter, origin: Origin, cache_dir: pathlib.Path) -> pathlib.Path:
    """Where one of spec.adapters is on this host: a `pvc` read in place like the model's, a
    downloaded one in the cache."""
    if adapter.source.pvc is not None:
        return _claim_path(adapter.source.pvc, origin)
    path = cached_path(adapter.source, cache_dir)
    assert path is not None
    return path


def model_path(server: llmserver_api.LLMServer, origin: Origin, cache_dir: pathlib.Path) -> pathlib.Path:
    """The `serve --model` path of a self-hosted server."""
    source = server.spec.source
    if source is not None and source.pvc is not None:
        return pvc_path(server, origin)
    return downloaded_path(server, cache_dir)


def check_local(server: llmserver_api.LLMServer, origin: pathlib.Path) -> list[str]:
    """Problems that only exist on this machine, found before anything starts (`field: message`)."""
    rule = "locally claimName is a folder, absolute or relative to the manifest, and path a file or folder inside it"
    source = server.spec.source
    problems = []
    if source is not None and source.pvc is not None and not (path := pvc_path(server, origin)).exists():
        problems.append(f"spec.source.pvc: {path} does not exist ({rule})")
    for adapter in server.spec.adapters:
        if adapter.source.pvc is not None and not (path := adapter_path(adapter, origin, pathlib.Path())).exists():
            problems.append(f"spec.adapters[{adapter.name}].source.pvc: {path} does not exist ({rule})")
    return problems
