"""The one pure function from observed children to an LLMServer's status.

Input: the spec (or why it is invalid), the previous status, what the reconciler saw (Job, its
pods, Deployment, runtime pods, which Secrets exist, Mac placement) and `now` as a string. Output:
the status fields the operator owns, as wire JSON. The download Job's `status.download` and the Mac
agent's fields are never written here. Same input, same output: no clock, no API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import llmserver_api
from llmserver_api import llmserver, proxy_policy
from llmserver_api.units import human_bytes

from llmserver_operator import workloads
from llmserver_operator.builders import plan

Manifest = dict[str, Any]
TYPES = ("Downloaded", "Ready", "Progressing", "Degraded")
OWNED_FIELDS = ("phase", "message", "conditions", "observedGeneration", "endpoint", "replicas", "readyReplicas", "selector")


@dataclasses.dataclass(frozen=True)
class Observed:
    """Everything the status depends on besides the spec; gathered by the reconciler."""

    invalid: str | None = None
    secrets: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    claim_found: bool = True
    job: Manifest | None = None
    job_pods: Sequence[Manifest] = ()
    deployment: Manifest | None = None
    pods: Sequence[Manifest] = ()
    placement: llmserver.Placement | None = None
    placement_ready: bool = False
    placement_problem: str | None = None  # why no Mac fits, or why the Mac's runtime failed
    no_image: str | None = None  # why no runtime image flavour fits (images.choose); no pod was created
    proxy_refused: str | None = None  # why the Proxy host policy refuses spec.proxy.url (proxy_policy)
    proxy_secret_opted_in: bool = True  # the Proxy's key Secret carries serving.llmserver.dev/proxy-key=true
    model_conflict: str | None = None  # "namespace/name" of an older LLMServer serving the same spec.model
    child_problem: tuple[str, str] | None = None  # (ChildConflict | InvalidChild, message): a child could not be written
    selector: str | None = None  # label selector of the runtime pods (builders.common.selector), for /scale
    adapters: Sequence[Manifest] | None = None  # status.adapters (adapter_status.compute); None: left as it is
    adapters_retry: float | None = None  # not status: replicas lag behind spec.adapters; look again after this


@dataclasses.dataclass
class _Verdict:
    phase: llmserver_api.Phase
    message: str
    conditions: dict[str, tuple[str, str, str]]  # type -> (status, reason, message)
    ready_replicas: int = 0


def secret_problem(ref: llmserver_api.SecretKeyRef | None, secrets: Mapping[str, frozenset[str]], field: str) -> str | None:
    """Why a referenced Secret key is unusable, naming the field; None when it is there."""
    if ref is None:
        return None
    if ref.name not in secrets:
        return f"Secret {ref.name!r} referenced by {field} was not found"
    if ref.key not in secrets[ref.name]:
        return f"Secret {ref.name!r} has no key {ref.key!r} (referenced by {field})"
    return None


def download_secret_refs(source: llmserver.Source) -> list[tuple[llmserver_api.SecretKeyRef, str]]:
    """The Secret keys the download Job reads, each with the spec field that names it: the Hub
    token, or the S3 access key id and secret key (AWS_SESSION_TOKEN is optional)."""
    if source.hugging_face is not None and source.hugging_face.token_secret_ref is not None:
        return [(source.hugging_face.token_secret_ref, "spec.source.huggingFace.tokenSecretRef")]
    if source.s3 is not None and source.s3.credentials_secret_ref is not None:
        name = source.s3.credentials_secret_ref.name
        return [(llmserver_api.SecretKeyRef(name=name, key=key), "spec.source.s3.credentialsSecretRef")
                for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    return []


def download_progress(download: Mapping[str, Any] | None, running: str) -> str:
    """A download's status.download as one phrase; `running` while the Job has reported nothing."""
    done, total = (download or {}).get("bytesDone"), (download or {}).get("bytesTotal")
    if done is None:
        return running
    if total:
        return f"downloaded {human_bytes(done)} of {human_bytes(total)} ({100 * done / total:.0f}%)"
    return f"downloaded {human_bytes(done)}"


def _progress(previous: Mapping[str, Any] | None) -> str:
    return download_progress((previous or {}).get("download"), "the download Job is running")


def _download(spec: llmserver_api.LLMServerSpec, observed: Observed, previous: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(status, reason, message) of the Downloaded condition."""
    assert spec.source is not None
    if spec.source.pvc is not None:
        if not observed.claim_found:
            return "False", "ClaimNotFound", f"PersistentVolumeClaim {spec.source.pvc.claim_name!r} (spec.source.pvc.claimName) was not found"
        return "True", "ModelOnClaim", f"the model is read from PersistentVolumeClaim {spec.source.pvc.claim_name!r}"
    hf, s3, url = spec.source.hugging_face, spec.source.s3, spec.source.url
    what = (f"{hf.repo}@{hf.revision}" if hf is not None else
            f"s3://{s3.bucket}/{s3.path}" if s3 is not None else url.url if url is not None else "the model")  # fmt: skip
    job = observed.job
    if job is not None and (workloads.job_condition(job, "Complete") or (job.get("status") or {}).get("succeeded")):
        return "True", "DownloadComplete", f"{what} is in the model cache"
    for ref, field in download_secret_refs(spec.source):
        problem = secret_problem(ref, observed.secrets, field)
        if problem:
            return "False", "SecretNotFound", problem
    if job is None:
        return "False", "DownloadPending", f"creating the download Job for {hf.repo if hf is not None else what}"
    if workloads.job_condition(job, "Failed"):
        return "False", "DownloadFailed", workloads.job_failure_message(job, observed.job_pods)
    return "False", "Downloading", _progress(previous)


def _kubernetes(spec: llmserver_api.LLMServerSpec, observed: Observed, previous: Mapping[str, Any] | None) -> _Verdict:
    downloaded = _download(spec, observed, previous)
    status_, reason, message = downloaded
    deploy = observed.deployment
    ready = int(((deploy or {}).get("status") or {}).get("readyReplicas") or 0)
    wanted = spec.replicas
    conditions = {"Downloaded": downloaded}
    if reason in ("SecretNotFound", "ClaimNotFound", "DownloadFailed"):
        phase = llmserver_api.Phase.FAILED if reason == "DownloadFailed" else llmserver_api.Phase.PENDING
        conditions["Progressing"] = ("False", reason, message)
        conditions["Degraded"] = ("True", reason, message)
        conditions["Ready"] = ("True", "ReplicasReady", f"{ready}/{wanted} replicas ready") if ready else ("False", reason, message)
        return _Verdict(phase, message, conditions, ready)
    if status_ != "True":
        conditions["Progressing"] = ("True", reason, message)
        conditions["Degraded"] = ("False", "AsExpected", "")
        conditions["Ready"] = ("True", "ReplicasReady", f"{ready}/{wanted} replicas ready (previous model)") if ready else ("False", "Downloading", message)
        return _Verdict(llmserver_api.Phase.DOWNLOADING, message, conditions, ready)
    problem = workloads.pod_problem(observed.pods) or workloads.deployment_problem(deploy)
    rolling = workloads.rolling(deploy, wanted)
    if wanted == 0:
        conditions["Ready"] = ("False", "ScaledToZero", "spec.replicas is 0: the model is unloaded")
        conditions["Progressing"] = ("False", "ScaledToZero", "")
        conditions["Degraded"] = ("False", "AsExpected", "")
        return _Verdict(llmserver_api.Phase.UNLOADED, "unloaded (spec.replicas is 0)", conditions, ready)
    if problem:
        conditions["Degraded"] = ("True", problem[0], problem[1])
    else:
        conditions["Degraded"] = ("False", "AsExpected", "")
    if rolling or ready < wanted:
        why = problem if problem and problem[0] == "Unschedulable" else ("RollingOut" if ready else "Starting", f"{ready}/{wanted} replicas ready")
        conditions["Progressing"] = ("True", why[0], why[1])
    else:
        conditions["Progressing"] = ("False", "Complete", f"{ready}/{wanted} replicas ready")
    if ready:
        conditions["Ready"] = ("True", "ReplicasReady", f"{ready}/{wanted} replicas ready")
        return _Verdict(llmserver_api.Phase.READY, f"{ready}/{wanted} replicas ready", conditions, ready)
    if problem:
        conditions["Ready"] = ("False", problem[0], problem[1])
        phase = llmserver_api.Phase.PENDING if problem[0] == "Unschedulable" else llmserver_api.Phase.FAILED
        return _Verdict(phase, f"{problem[0]}: {problem[1]}", conditions, ready)
    waiting = "waiting for the Deployment" if deploy is None else f"0/{wanted} replicas ready"
    conditions["Ready"] = ("False", "Starting", waiting)
    return _Verdict(llmserver_api.Phase.STARTING, f"starting: {waiting}", conditions, ready)


def _proxy(spec: llmserver_api.LLMServerSpec, observed: Observed) -> _Verdict:
    assert spec.proxy is not None
    conditions = {"Downloaded": ("True", "NotRequired", "Proxy mode: the provider hosts the model")}
    if observed.proxy_refused:
        message = (f"spec.proxy.url is not allowed: {observed.proxy_refused}; the gateway sends nothing there "
                   "(an administrator lists hosts in the chart value proxy.allowedHosts)")
        conditions.update(Ready=("False", "ProxyNotAllowed", message), Progressing=("False", "ProxyNotAllowed", message),
                          Degraded=("True", "ProxyNotAllowed", message))
        return _Verdict(llmserver_api.Phase.FAILED, message, conditions)
    ref = spec.proxy.api_key_secret_ref
    problem = secret_problem(ref, observed.secrets, "spec.proxy.apiKeySecretRef")
    reason = "SecretNotFound"
    if problem is None and ref is not None and not observed.proxy_secret_opted_in:
        reason = "SecretNotOptedIn"
        problem = (f"Secret {ref.name!r} (spec.proxy.apiKeySecretRef) is not labelled "
                   f"{proxy_policy.PROXY_KEY_LABEL}=true; label it to let a Proxy send its value to the provider")
    if problem:
        conditions.update(Ready=("False", reason, problem), Progressing=("True", reason, problem),
                          Degraded=("True", reason, problem))
        return _Verdict(llmserver_api.Phase.PENDING, problem, conditions)
    message = f"forwarding to {spec.proxy.url}"
    conditions.update(Ready=("True", "ProxyConfigured", message), Progressing=("False", "Complete", ""),
                      Degraded=("False", "AsExpected", ""))
    return _Verdict(llmserver_api.Phase.READY, message, conditions)


def _apple(spec: llmserver.LLMServerSpec, observed: Observed) -> _Verdict:
    conditions = {"Downloaded": ("Unknown", "OnAppleNode", "the Mac's agent downloads the model"),
                  "Degraded": ("False", "AsExpected", "")}
    if observed.placement is None:
        why = observed.placement_problem or "none is assigned yet"
        message = f"waiting for an AppleNode: mlx and mlx-vlm models run on a registered Mac; {why}"
        conditions.update(Ready=("False", "WaitingForAppleNode", message), Progressing=("True", "WaitingForAppleNode", message))
        return _Verdict(llmserver_api.Phase.PENDING, message, conditions)
    node = observed.placement.node
    if observed.placement_problem:
        message = f"the runtime on AppleNode {node!r} failed: {observed.placement_problem}"
        conditions.update(Ready=("False", "RuntimeFailedOnAppleNode", message), Progressing=("False", "Failed", message),
                          Degraded=("True", "RuntimeFailedOnAppleNode", message))
        return _Verdict(llmserver_api.Phase.FAILED, message, conditions)
    if spec.replicas == 0:  # the agent unloads the runtime and keeps the placement (scale to zero)
        conditions.update(Ready=("False", "ScaledToZero", "spec.replicas is 0: the model is unloaded"),
                          Progressing=("False", "ScaledToZero", ""))
        return _Verdict(llmserver_api.Phase.UNLOADED, f"unloaded on AppleNode {node!r} (spec.replicas is 0)",
                        conditions, int(observed.placement_ready))
    if observed.placement_ready:
        conditions.update(Ready=("True", "RunningOnAppleNode", f"serving on AppleNode {node!r}"), Progressing=("False", "Complete", ""))
        return _Verdict(llmserver_api.Phase.READY, f"serving on AppleNode {node!r}", conditions, 1)
    message = f"placed on AppleNode {node!r}, waiting for its runtime"
    conditions.update(Ready=("False", "StartingOnAppleNode", message), Progressing=("True", "StartingOnAppleNode", message))
    return _Verdict(llmserver_api.Phase.STARTING, message, conditions)


def _no_image(message: str) -> _Verdict:
    reason = "NoRuntimeImage"
    conditions = {"Downloaded": ("Unknown", reason, "nothing is downloaded for a server no image can run"),
                  "Ready": ("False", reason, message), "Progressing": ("False", reason, message),
                  "Degraded": ("True", reason, message)}
    return _Verdict(llmserver_api.Phase.FAILED, f"no runtime image: {message}", conditions)


def _child_problem(reason: str, message: str) -> _Verdict:
    conditions = {"Downloaded": ("Unknown", reason, message), "Ready": ("False", reason, message),
                  "Progressing": ("False", reason, message), "Degraded": ("True", reason, message)}
    return _Verdict(llmserver_api.Phase.FAILED, message, conditions)


def _invalid(message: str) -> _Verdict:
    conditions = {"Downloaded": ("Unknown", "InvalidSpec", message), "Ready": ("False", "InvalidSpec", message),
                  "Progressing": ("False", "InvalidSpec", message), "Degraded": ("True", "InvalidSpec", message)}
    return _Verdict(llmserver_api.Phase.FAILED, f"invalid spec: {message}", conditions)


def _conflicting(verdict: _Verdict, model: str, winner: str) -> _Verdict:
    """An older LLMServer serves the same model name: the gateway routes it there, not here. The
    server's own workload keeps its phase and Ready (it may be meant to take over); Degraded says
    why it gets no traffic (unless its workload already has a problem to report) and no endpoint
    is published."""
    message = (f"model {model!r} is also served by LLMServer {winner}, created earlier: the gateway routes it "
               "there; rename spec.model or delete one of them")
    conditions = dict(verdict.conditions)
    if conditions["Degraded"][0] != "True":
        conditions["Degraded"] = ("True", "ModelNameConflict", message)
    return dataclasses.replace(verdict, message=f"{verdict.message}; {message}", conditions=conditions)


def label_selector(labels: Mapping[str, str]) -> str:
    """Labels as the string form of a label selector (`k=v,k=v`, sorted), as /scale reports it."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def observed_replicas(spec: llmserver_api.LLMServerSpec | None, observed: Observed) -> int:
    """status.replicas, the count the scale subresource reports: what runs, not what is wanted.
    A cluster server counts its runtime Deployment's pods; a Mac placement is one runtime, counted
    while it is loaded; a Proxy runs nothing of its own."""
    if spec is not None and plan.placement(spec) == plan.Placement.PROXY:
        return 0
    if spec is not None and plan.placement(spec) == plan.Placement.APPLE:
        return int(observed.placement is not None and observed.placement_ready and not observed.placement_problem)
    return int(((observed.deployment or {}).get("status") or {}).get("replicas") or 0)


def _conditions(verdict: _Verdict, previous: Mapping[str, Any] | None, generation: int | None, now: str) -> list[Manifest]:
    """Standard conditions; lastTransitionTime moves only when a condition's status changes."""
    before = {c.get("type"): c for c in (previous or {}).get("conditions") or [] if isinstance(c, dict)}
    out: list[Manifest] = []
    for kind in TYPES:
        status_, reason, message = verdict.conditions[kind]
        old = before.get(kind) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status_ and old.get("lastTransitionTime") else now
        condition: Manifest = {"type": kind, "status": status_, "reason": reason, "message": message, "lastTransitionTime": since}
        if generation is not None:
            condition["observedGeneration"] = generation
        out.append(condition)
    return out


def compute(
    *,
    spec: llmserver_api.LLMServerSpec | None,
    generation: int | None,
    previous: Mapping[str, Any] | None,
    observed: Observed,
    endpoint: str,
    now: str,
) -> Manifest:
    """The operator-owned status fields (wire JSON). `spec` is None exactly when observed.invalid is set."""
    if spec is None or observed.invalid:
        verdict = _invalid(observed.invalid or "spec is missing")
    elif observed.child_problem:
        verdict = _child_problem(*observed.child_problem)
    elif observed.no_image:
        verdict = _no_image(observed.no_image)
    elif plan.placement(spec) == plan.Placement.PROXY:
        verdict = _proxy(spec, observed)
    elif plan.placement(spec) == plan.Placement.APPLE:
        verdict = _apple(spec, observed)
    else:
        verdict = _kubernetes(spec, observed, previous)
    routed = True
    if spec is not None and observed.model_conflict and not observed.invalid:
        verdict, routed = _conflicting(verdict, spec.model, observed.model_conflict), False
    conditions = _conditions(verdict, previous, generation, now)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    message = verdict.message
    if ready and routed and spec is not None:
        message = f"{message}; model {spec.model!r} at {endpoint}"
    out: Manifest = {
        "phase": verdict.phase.value,
        "message": message,
        "conditions": conditions,
        "observedGeneration": generation,
        "endpoint": endpoint if ready and routed else None,
        "replicas": observed_replicas(spec, observed),
        "readyReplicas": verdict.ready_replicas,
        "selector": observed.selector,
    }
    if observed.adapters is not None:
        out["adapters"] = list(observed.adapters)
    elif spec is not None and plan.placement(spec) == plan.Placement.APPLE and observed.placement is None:
        unplaced = _unplaced_adapters(spec, previous)  # placed: the Mac's agent owns status.adapters
        if unplaced is not None:
            out["adapters"] = unplaced
    if spec is not None and plan.placement(spec) != plan.Placement.APPLE and (previous or {}).get("placement") is not None:
        out["placement"] = None  # left from Mac mode: the Mac's agent stops serving what is not placed on it
    return out


def _unplaced_adapters(spec: llmserver_api.LLMServerSpec, previous: Mapping[str, Any] | None) -> list[Manifest] | None:
    """status.adapters of a Mac server on no Mac: nothing serves them (None: none listed or wanted)."""
    if not spec.adapters and not (previous or {}).get("adapters"):
        return None
    return [{"name": a.name, "phase": "Pending", "readyReplicas": 0, "message": "waiting for an AppleNode"}
            for a in spec.adapters]


def changed(current: Mapping[str, Any] | None, computed: Mapping[str, Any]) -> bool:
    """Whether writing `computed` would change anything (None means absent, as in a merge patch)."""
    current = current or {}
    optional = [key for key in ("placement", "adapters") if key in computed]
    return any(current.get(key) != computed.get(key) for key in (*OWNED_FIELDS, *optional))


def describe_validation_error(errors: Sequence[Mapping[str, Any]]) -> str:
    """pydantic errors as one line, each naming its field as a dotted wire path."""
    parts = []
    for error in errors:
        loc = ".".join(str(part) for part in error.get("loc", ()) if not str(part).startswith("function-"))
        parts.append(f"{loc}: {error.get('msg', 'invalid')}" if loc else str(error.get("msg", "invalid")))
    return "; ".join(parts)
