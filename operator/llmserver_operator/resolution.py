"""`backend: auto` in the operator: decide the engine before building children, from the Hub.

For a Hugging Face source the repo's metadata (file list, tags, the small config files) is asked of
the Hub once per (repo, revision, file) and kept, so a resync that changes nothing makes no Hub
call; `llmserver_api.detection.resolve` then applies the spec's explicit values on top. The builders
get a copy of the server with the decided backend, capabilities and (for a lone GGUF, split or not)
file filled in. A PVC source has no files the operator can see: the runtime decides at start and
status says so.
Nothing here guesses: what cannot be decided, or contradicts the spec, becomes a `Resolved`
condition naming what was seen. The token is read from the Secret only to call the Hub, never kept
in a message.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import llmserver_api
from llmserver_api import detection

from llmserver_operator import hub, images
from llmserver_operator import kube as kube_mod

Manifest = dict[str, Any]
CONDITION = "Resolved"
Fetch = Callable[..., detection.ModelFiles]


@dataclasses.dataclass(frozen=True)
class Result:
    """What the reconciler builds from, and what goes into status.

    `server` is the LLMServer to build children from; `resolved` is status.resolved (None when the
    spec left nothing to decide); `condition` is (status, reason, message) of `Resolved`;
    `blocked` means no child can be built: the message says why."""

    server: llmserver_api.LLMServer
    resolved: Manifest | None = None
    condition: tuple[str, str, str] | None = None
    blocked: str | None = None


def _status(backend: llmserver_api.Backend | None, capabilities: Any, reason: str) -> Manifest:
    """status.resolved as Kubernetes stores it (no null fields), so a resync compares equal."""
    return llmserver_api.llmserver.Resolution(backend=backend, capabilities=list(capabilities or []),
                                              reason=reason).to_wire()


def needs_resolution(spec: llmserver_api.LLMServerSpec) -> bool:
    """Self-hosted servers with `backend: auto` or without capabilities."""
    return spec.mode != llmserver_api.Mode.PROXY and (spec.backend == llmserver_api.Backend.AUTO or not spec.capabilities)


class Resolver:
    """Holds the Hub answers per (repo, revision, file); safe to use from many reconcile threads.

    Failed Hub calls are remembered for `error_ttl` seconds so child events do not hammer the Hub."""

    def __init__(self, kube: kube_mod.Kube, fetch: Fetch = hub.hub_model_files, error_ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.fetch = fetch
        self.error_ttl = error_ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str, str | None], detection.ModelFiles] = {}
        self._errors: dict[tuple[str, str, str | None], tuple[float, str]] = {}

    def resolve(self, server: llmserver_api.LLMServer) -> Result:
        """The server to build from and the status of the decision."""
        spec = server.spec
        if not needs_resolution(spec) or spec.source is None:
            return Result(server)
        if spec.backend != llmserver_api.Backend.AUTO:
            reason = (f"spec.backend is {spec.backend.value}; capabilities are detected by the runtime from "
                      "the model files when it loads them")
            return Result(server, _status(spec.backend, [], reason))
        hf = spec.source.hugging_face
        if hf is None:
            kind = "a PersistentVolumeClaim" if spec.source.pvc is not None else "an S3 or URL source"
            reason = (f"spec.source is {kind}: the operator cannot see its files, so the "
                      "runtime detects the backend from them at start (llmserver-runtime serve --backend auto)")
            return Result(server, _status(None, spec.capabilities, reason), ("Unknown", "DecidedByRuntime", reason))
        model = self._model_files(server)
        if isinstance(model, str):
            reason = f"{model}; the runtime detects the backend from the downloaded files at start"
            return Result(server, _status(None, spec.capabilities, reason), ("False", "HubUnavailable", reason))
        found = detection.resolve(spec, model)
        resolved = found.to_status().to_wire()
        if found.backend is None or not found.capabilities:
            message = f"backend: auto for {hf.repo}: {found.detection.reason}"
            return Result(server, resolved, ("False", "CannotDecide", message), blocked=message)
        update: dict[str, Any] = {"backend": found.backend, "capabilities": list(found.capabilities)}
        model_file = found.detection.model_file
        if hf.file is None and model_file:
            # A split GGUF is named by its first part: the download Job then fetches that split's
            # parts (and nothing else of the repo), and llama.cpp loads the split from it.
            first = (detection.split_parts(model_file) or (model_file,))[0]
            update["source"] = spec.source.model_copy(update={"hugging_face": hf.model_copy(update={"file": first})})
        built = server.model_copy(update={"spec": spec.model_copy(update=update)})
        if found.contradictions:
            message = "; ".join(found.contradictions)
            return Result(built, resolved, ("False", "Contradiction", f"{message} (the spec's values are used)"))
        return Result(built, resolved, ("True", "Detected", found.reason))

    def _model_files(self, server: llmserver_api.LLMServer) -> detection.ModelFiles | str:
        """The repo as detection sees it, or a one-line reason the Hub did not answer."""
        hf = server.spec.source.hugging_face  # type: ignore[union-attr]
        assert hf is not None
        key = (hf.repo, hf.revision, hf.file)
        with self._lock:
            if key in self._files:
                return self._files[key]
            failed = self._errors.get(key)
            if failed is not None and self.clock() - failed[0] < self.error_ttl:
                return failed[1]
        try:
            token = self._token(server)
            model = self.fetch(hf.repo, hf.revision, token, hf.file)
        except hub.HubError as exc:
            with self._lock:
                self._errors[key] = (self.clock(), f"the Hub did not answer: {exc}")
            return self._errors[key][1]
        with self._lock:
            self._files[key] = model
            self._errors.pop(key, None)
        return model

    def _token(self, server: llmserver_api.LLMServer) -> str | None:
        """The Hub token from spec.source.huggingFace.tokenSecretRef; None when unset or not there
        yet (the download waits for it and says so)."""
        ref = server.spec.source.hugging_face.token_secret_ref  # type: ignore[union-attr]
        if ref is None:
            return None
        secret = self.kube.get("Secret", server.metadata.namespace or "default", ref.name) or {}
        if ref.key in (secret.get("stringData") or {}):
            return str(secret["stringData"][ref.key])
        encoded = (secret.get("data") or {}).get(ref.key)
        return base64.b64decode(encoded).decode() if encoded else None


def with_resolved(computed: Manifest, previous: Mapping[str, Any] | None, result: Result | None,
                  generation: int | None, now: str, server: llmserver_api.LLMServer | None = None,
                  image: images.Choice | None = None) -> Manifest:
    """`computed` status plus status.resolved (the decided engine and, for cluster pods, the runtime
    image and why) and the Resolved condition (lastTransitionTime kept while its status stays the
    same). With nothing to resolve and no image to choose both are removed."""
    out = dict(computed)
    out["resolved"] = result.resolved if result is not None else None
    if image is not None and server is not None:
        decided = out["resolved"] or _status(server.spec.backend, server.spec.capabilities, "set in the spec")
        out["resolved"] = {**decided, **image.to_status()}
    if result is None or result.condition is None:
        return out
    status_, reason, message = result.condition
    old = next((c for c in (previous or {}).get("conditions") or [] if isinstance(c, dict) and c.get("type") == CONDITION), {})
    since = old.get("lastTransitionTime") if old.get("status") == status_ and old.get("lastTransitionTime") else now
    condition: Manifest = {"type": CONDITION, "status": status_, "reason": reason, "message": message,
                           "lastTransitionTime": since}
    if generation is not None:
        condition["observedGeneration"] = generation
    out["conditions"] = [*computed.get("conditions", []), condition]
    return out


def changed(current: Mapping[str, Any] | None, computed: Mapping[str, Any]) -> bool:
    """Whether status.resolved would change (the conditions are compared by status.changed)."""
    return (current or {}).get("resolved") != computed.get("resolved")
