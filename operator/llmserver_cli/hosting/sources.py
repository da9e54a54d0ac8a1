"""Where a server's model files live on this machine (local mode and the Mac agent alike).

In a cluster `source.pvc` names a PersistentVolumeClaim; locally there are no claims, so
`claimName` is read as a folder: absolute, `~/...`, or relative to the manifest's own folder
(`claimName: ./models`, `path: tiny.gguf`). A Hugging Face source lives in the local model cache
at the same relative path the cluster cache uses (llmserver_api.paths), so downloads are shared
between `llmserver download-model` and `llmserver up`.
"""

from __future__ import annotations

import pathlib

import llmserver_api
import llmserver_api.paths


def pvc_path(server: llmserver_api.LLMServer, origin: pathlib.Path) -> pathlib.Path:
    """The local file or folder a `source.pvc` points at (`origin` is the manifest file)."""
    pvc = server.spec.source.pvc if server.spec.source else None
    if pvc is None:
        raise ValueError("server has no source.pvc")
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


def model_path(server: llmserver_api.LLMServer, origin: pathlib.Path, cache_dir: pathlib.Path) -> pathlib.Path:
    """The `serve --model` path of a self-hosted server."""
    source = server.spec.source
    if source is not None and source.pvc is not None:
        return pvc_path(server, origin)
    return huggingface_path(server, cache_dir)


def check_local(server: llmserver_api.LLMServer, origin: pathlib.Path) -> list[str]:
    """Problems that only exist on this machine, found before anything starts (`field: message`)."""
    source = server.spec.source
    if source is None or source.pvc is None:
        return []
    path = pvc_path(server, origin)
    if not path.exists():
        return [
            f"spec.source.pvc: {path} does not exist (locally claimName is a folder, absolute or "
            f"relative to the manifest, and path a file or folder inside it)"
        ]
    return []
