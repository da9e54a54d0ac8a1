"""The status function over observed states: phases, conditions, reasons, messages and times."""

from __future__ import annotations

from typing import Any

import llmserver_api
import pydantic
import pytest
from llmserver_operator import status

pytestmark = pytest.mark.timeout(60)

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"
ENDPOINT = "http://gw.ns.svc/v1"


def spec(**fields: Any) -> llmserver_api.LLMServerSpec:
    body = {"model": "tiny", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "acme/tiny"}}}
    body.update(fields)
    return llmserver_api.LLMServerSpec.model_validate(body)


def compute(observed: status.Observed, the_spec: llmserver_api.LLMServerSpec | None = None,
            previous: dict[str, Any] | None = None, now: str = NOW) -> dict[str, Any]:
    return status.compute(spec=the_spec or spec(), generation=3, previous=previous, observed=observed,
                          endpoint=ENDPOINT, now=now)


def condition(result: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in result["conditions"] if c["type"] == kind)


def job(**job_status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "tiny-download-1"}, "status": job_status}


def deployment(ready: int, replicas: int = 1, generation: int = 1, observed: int = 1, updated: int | None = None) -> dict[str, Any]:
    return {"metadata": {"generation": generation},
            "status": {"readyReplicas": ready, "replicas": replicas, "observedGeneration": observed,
                       "updatedReplicas": replicas if updated is None else updated}}


COMPLETE = job(succeeded=1, conditions=[{"type": "Complete", "status": "True"}])


def test_no_job_yet_is_downloading() -> None:
    result = compute(status.Observed())
    assert result["phase"] == "Downloading"
    assert condition(result, "Downloaded")["reason"] == "DownloadPending"
    assert condition(result, "Ready")["status"] == "False"
    assert result["endpoint"] is None
    assert result["observedGeneration"] == 3


def test_running_job_reports_the_progress_the_downloader_wrote() -> None:
    previous = {"download": {"bytesDone": 512 * 1024 * 1024, "bytesTotal": 1024 * 1024 * 1024}}
    result = compute(status.Observed(job=job(active=1)), previous=previous)
    assert result["phase"] == "Downloading"
    downloaded = condition(result, "Downloaded")
    assert (downloaded["status"], downloaded["reason"]) == ("False", "Downloading")
    assert downloaded["message"] == "downloaded 512.0 MiB of 1.0 GiB (50%)"
    assert condition(result, "Progressing")["status"] == "True"
    assert "download" not in result  # the downloader owns that field


def test_failed_job_shows_the_pods_termination_message() -> None:
    failed = job(failed=7, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
    pods = [
        {"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:01Z"},
         "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 1, "message": "old"}}}]}},
        {"metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:09Z"},
         "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 2, "message": "401: repo is gated\n"}}}]}},
    ]
    result = compute(status.Observed(job=failed, job_pods=pods))
    assert result["phase"] == "Failed"
    downloaded = condition(result, "Downloaded")
    assert (downloaded["status"], downloaded["reason"]) == ("False", "DownloadFailed")
    assert downloaded["message"] == "download failed (exit code 2): 401: repo is gated"
    assert condition(result, "Degraded")["status"] == "True"
    without_pods = compute(status.Observed(job=failed))
    assert "BackoffLimitExceeded" in condition(without_pods, "Downloaded")["message"]


def test_missing_token_secret_waits_and_names_the_field() -> None:
    gated = spec(source={"huggingFace": {"repo": "a/b", "tokenSecretRef": {"name": "hf", "key": "token"}}})
    result = compute(status.Observed(), gated)
    assert result["phase"] == "Pending"
    assert condition(result, "Downloaded")["reason"] == "SecretNotFound"
    assert "spec.source.huggingFace.tokenSecretRef" in condition(result, "Downloaded")["message"]
    wrong_key = compute(status.Observed(secrets={"hf": frozenset({"other"})}), gated)
    assert "no key 'token'" in condition(wrong_key, "Downloaded")["message"]
    present = compute(status.Observed(secrets={"hf": frozenset({"token"})}), gated)
    assert condition(present, "Downloaded")["reason"] == "DownloadPending"


def test_downloaded_without_deployment_is_starting() -> None:
    result = compute(status.Observed(job=COMPLETE))
    assert result["phase"] == "Starting"
    assert condition(result, "Downloaded")["status"] == "True"
    assert condition(result, "Ready")["reason"] == "Starting"


def test_ready_replicas_make_it_ready_with_the_gateway_endpoint() -> None:
    result = compute(status.Observed(job=COMPLETE, deployment=deployment(ready=2, replicas=2)), spec(replicas=2))
    assert result["phase"] == "Ready"
    assert result["readyReplicas"] == 2
    assert result["replicas"] == 2
    assert result["endpoint"] == ENDPOINT
    assert "'tiny'" in result["message"] and ENDPOINT in result["message"]
    assert condition(result, "Progressing")["status"] == "False"
    assert condition(result, "Degraded")["status"] == "False"


def test_rollout_keeps_ready_but_progressing() -> None:
    rolling = deployment(ready=1, replicas=2, generation=4, observed=3, updated=1)
    result = compute(status.Observed(job=COMPLETE, deployment=rolling), spec(replicas=2))
    assert result["phase"] == "Ready"
    assert condition(result, "Progressing")["status"] == "True"
    assert condition(result, "Progressing")["reason"] == "RollingOut"


def crash_pod(reason: str = "CrashLoopBackOff") -> dict[str, Any]:
    return {"metadata": {"name": "tiny-abc"}, "status": {"containerStatuses": [{
        "name": "runtime", "restartCount": 4, "state": {"waiting": {"reason": reason, "message": "back-off 40s"}},
        "lastState": {"terminated": {"exitCode": 1, "message": "ValueError: not a GGUF file"}}}]}}


def test_crash_looping_pod_is_failed_and_degraded_with_its_error() -> None:
    result = compute(status.Observed(job=COMPLETE, deployment=deployment(ready=0), pods=[crash_pod()]))
    assert result["phase"] == "Failed"
    degraded = condition(result, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "CrashLoopBackOff")
    assert "not a GGUF file" in degraded["message"] and "restarts: 4" in degraded["message"]
    assert condition(result, "Ready")["reason"] == "CrashLoopBackOff"


def test_unschedulable_pod_says_why_in_progressing() -> None:
    pod = {"metadata": {"name": "tiny-abc"}, "status": {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}}
    result = compute(status.Observed(job=COMPLETE, deployment=deployment(ready=0), pods=[pod]), spec(resources={"gpus": 1}))
    assert result["phase"] == "Pending"
    progressing = condition(result, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in progressing["message"]
    assert condition(result, "Degraded")["reason"] == "Unschedulable"


def test_zero_replicas_is_unloaded() -> None:
    result = compute(status.Observed(job=COMPLETE, deployment=deployment(ready=0, replicas=0)), spec(replicas=0))
    assert result["phase"] == "Unloaded"
    assert condition(result, "Ready")["reason"] == "ScaledToZero"


def test_pvc_source_needs_its_claim() -> None:
    the_spec = spec(source={"pvc": {"claimName": "models", "path": "m.gguf"}})
    missing = compute(status.Observed(claim_found=False), the_spec)
    assert missing["phase"] == "Pending"
    assert condition(missing, "Downloaded")["reason"] == "ClaimNotFound"
    assert "spec.source.pvc.claimName" in condition(missing, "Downloaded")["message"]
    found = compute(status.Observed(), the_spec)
    assert condition(found, "Downloaded")["reason"] == "ModelOnClaim"
    assert found["phase"] == "Starting"


def test_proxy_is_ready_once_its_key_secret_exists() -> None:
    proxy = spec(mode="Proxy", source=None, backend="auto",
                 proxy={"url": "https://api.example/v1", "apiKeySecretRef": {"name": "key", "key": "k"}})
    waiting = compute(status.Observed(), proxy)
    assert waiting["phase"] == "Pending"
    assert condition(waiting, "Ready")["reason"] == "SecretNotFound"
    ready = compute(status.Observed(secrets={"key": frozenset({"k"})}), proxy)
    assert ready["phase"] == "Ready"
    assert ready["endpoint"] == ENDPOINT
    assert condition(ready, "Ready")["reason"] == "ProxyConfigured"


def test_mlx_waits_for_an_apple_node() -> None:
    result = compute(status.Observed(), spec(backend="mlx", source={"huggingFace": {"repo": "mlx-community/tiny"}}))
    assert result["phase"] == "Pending"
    ready = condition(result, "Ready")
    assert ready["reason"] == "WaitingForAppleNode"
    assert "AppleNode" in ready["message"]
    placed = compute(status.Observed(placement=llmserver_api.llmserver.Placement(node="mac-1"), placement_ready=True),
                     spec(backend="mlx"))
    assert placed["phase"] == "Ready"


def test_invalid_spec_is_failed_with_the_field_named() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        llmserver_api.LLMServer.model_validate({"metadata": {"name": "x"}, "spec": {"model": "x", "replicas": -1,
                                                                                   "source": {"pvc": {"claimName": "c"}}}})
    message = status.describe_validation_error(caught.value.errors())
    assert "spec.replicas" in message
    result = status.compute(spec=None, generation=2, previous=None, observed=status.Observed(invalid=message),
                            endpoint=ENDPOINT, now=NOW)
    assert result["phase"] == "Failed"
    assert condition(result, "Ready")["reason"] == "InvalidSpec"
    assert "spec.replicas" in result["message"]


def test_transition_time_moves_only_when_a_condition_flips() -> None:
    first = compute(status.Observed(job=job(active=1)))
    again = compute(status.Observed(job=job(active=1)), previous=first, now=LATER)
    assert again == first
    assert not status.changed(first, again)
    done = compute(status.Observed(job=COMPLETE), previous=first, now=LATER)
    assert condition(done, "Downloaded")["lastTransitionTime"] == LATER
    assert condition(done, "Degraded")["lastTransitionTime"] == NOW  # stayed False
    assert status.changed(first, done)


def test_changed_treats_none_as_absent() -> None:
    result = compute(status.Observed())
    stored = {key: value for key, value in result.items() if value is not None}
    assert not status.changed(stored, result)
    assert status.changed({**stored, "endpoint": "http://old"}, result)
