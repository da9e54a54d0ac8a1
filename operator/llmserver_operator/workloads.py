"""Pure readers of observed Jobs, Deployments and Pods: what failed, why, and is it rolling.

Kept apart from `status` so the status function reads as policy while this holds the details
of the Kubernetes object shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Manifest = dict[str, Any]

# Container waiting reasons that mean "this will not get better by itself".
BAD_WAITING = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName")


def job_condition(job: Manifest, kind: str) -> Manifest | None:
    """The Job's condition of that type when it is True."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _terminated(pod: Manifest) -> Manifest | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            return terminated
    return None


def job_failure_message(job: Manifest, pods: Sequence[Manifest]) -> str:
    """The newest failed pod's termination message, else the Job's own Failed condition text."""
    failed = [pod for pod in pods if _terminated(pod) is not None]
    failed.sort(key=lambda pod: (pod.get("metadata") or {}).get("creationTimestamp") or "")
    if failed:
        terminated = _terminated(failed[-1]) or {}
        text = (terminated.get("message") or "").strip()
        reason = terminated.get("reason") or "Error"
        exit_code = terminated.get("exitCode")
        if text:
            return f"download failed (exit code {exit_code}): {text}"
        return f"download failed (exit code {exit_code}, {reason})"
    condition = job_condition(job, "Failed") or {}
    return f"download Job failed: {condition.get('reason', 'Failed')}: {condition.get('message', '')}".rstrip(": ")


def pod_problem(pods: Sequence[Manifest]) -> tuple[str, str] | None:
    """(reason, message) of the first runtime pod that is stuck: crash loop, image, or unschedulable."""
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name") or ""):
        name = (pod.get("metadata") or {}).get("name")
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in BAD_WAITING:
                last = ((container.get("lastState") or {}).get("terminated") or {}).get("message") or ""
                detail = "; ".join(part.strip() for part in (waiting.get("message") or "", last) if part.strip())
                restarts = container.get("restartCount", 0)
                message = f"pod {name}: container {container.get('name')} {waiting['reason']} (restarts: {restarts})"
                return waiting["reason"], f"{message}: {detail}" if detail else message
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and condition.get("reason") == "Unschedulable":
                return "Unschedulable", f"pod {name} cannot be scheduled: {condition.get('message', '')}".rstrip(": ")
    return None


def deployment_problem(deployment: Manifest | None) -> tuple[str, str] | None:
    """The Deployment gave up progressing (progressDeadlineSeconds passed)."""
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return "ProgressDeadlineExceeded", condition.get("message") or "the rollout exceeded its progress deadline"
    return None


def rolling(deployment: Manifest | None, wanted: int) -> bool:
    """Whether the Deployment has not yet caught up with its spec (new template or replica count)."""
    if deployment is None:
        return True
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation")
    if generation is not None and (status.get("observedGeneration") or 0) < generation:
        return True
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    return updated < wanted or total > wanted
