"""Pure helpers of the kubelet simulator: the pods, statuses and EndpointSlices it writes.

The shapes follow what the real kubelet, Job, Deployment and EndpointSlice controllers write, in
the fields the project reads (phase, conditions, containerStatuses, ready counts, endpoints).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from testkit import emulator_store

Manifest = dict[str, Any]
API = {"Job": "batch/v1", "Deployment": "apps/v1", "Pod": "v1", "Service": "v1", "EndpointSlice": "discovery.k8s.io/v1"}
HASH = "kubelet.testkit/template-hash"


def _owner(obj: Manifest) -> Manifest:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def job_finished(job: Manifest) -> bool:
    """A Job with a Complete or Failed condition."""
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def job_pod(job: Manifest) -> Manifest:
    """The pod the Job controller creates (labels job-name and controller-uid)."""
    template = copy.deepcopy(job["spec"]["template"])
    meta = template.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), "job-name": job["metadata"]["name"],
              "batch.kubernetes.io/job-name": job["metadata"]["name"], "controller-uid": job["metadata"]["uid"],
              "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{job['metadata']['name']}-", "namespace": job["metadata"]["namespace"],
                         "labels": labels, "annotations": meta.get("annotations") or {}, "ownerReferences": [_owner(job)]},
            "spec": {**template["spec"], "nodeName": "sim-node"}}


def job_statuses(job: Manifest, outcome: str, message: str, exit_code: int) -> tuple[Manifest, Manifest]:
    """(pod status, Job status) for an outcome: succeed, fail or hold."""
    now = emulator_store.now()
    container = job["spec"]["template"]["spec"]["containers"][0]["name"]
    if outcome == "hold":
        state = {"running": {"startedAt": now}}
        return ({"phase": "Running", "containerStatuses": [_container(container, state, ready=True)]},
                {"active": 1, "startTime": now})
    if outcome == "succeed":
        state = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}
        return ({"phase": "Succeeded", "containerStatuses": [_container(container, state, ready=False)]},
                {"active": 0, "succeeded": 1, "startTime": now, "completionTime": now,
                 "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                                {"type": "Complete", "status": "True", "lastTransitionTime": now}]})
    terminated = {"exitCode": exit_code, "reason": "Error", "message": message, "startedAt": now, "finishedAt": now}
    limit = int(job["spec"].get("backoffLimit", 6))
    return ({"phase": "Failed", "containerStatuses": [_container(container, {"terminated": terminated}, ready=False)]},
            {"active": 0, "failed": limit + 1, "startTime": now,
             "conditions": [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                             "message": "Job has reached the specified backoff limit", "lastTransitionTime": now},
                            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                             "message": "Job has reached the specified backoff limit", "lastTransitionTime": now}]})


def template_hash(deployment: Manifest) -> str:
    """Identifies the pod template (a change rolls the pods, as a new ReplicaSet would)."""
    raw = json.dumps(deployment["spec"]["template"], sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:10]


def deployment_pod(deployment: Manifest, want: str) -> Manifest:
    """A pod of the Deployment's current template."""
    template = copy.deepcopy(deployment["spec"]["template"])
    meta = template.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{deployment['metadata']['name']}-{want}-",
                         "namespace": deployment["metadata"]["namespace"],
                         "labels": {**(meta.get("labels") or {}), "pod-template-hash": want},
                         "annotations": {**(meta.get("annotations") or {}), HASH: want},
                         "ownerReferences": [_owner(deployment)]},
            "spec": template["spec"]}


def _container(name: str, state: Manifest, ready: bool, restarts: int = 0, last: Manifest | None = None) -> Manifest:
    status = {"name": name, "ready": ready, "restartCount": restarts, "started": "running" in state,
              "state": state, "image": "", "imageID": ""}
    if last:
        status["lastState"] = last
    return status


def _conditions(scheduled: bool, ready: bool, now: str, message: str = "") -> list[Manifest]:
    if not scheduled:
        return [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                 "lastTransitionTime": now}]
    flag = "True" if ready else "False"
    return [{"type": kind, "status": value, "lastTransitionTime": now}
            for kind, value in (("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", flag), ("Ready", flag))]


def pod_status(pod: Manifest, mode: str, message: str, ip: str, exit_code: int = 1) -> Manifest:
    """Pod status for a mode: ready, starting, pending, crashloop or unschedulable."""
    now = ((pod.get("status") or {}).get("startTime")) or emulator_store.now()
    name = pod["spec"]["containers"][0]["name"]
    if mode == "unschedulable":
        text = message or "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available."
        return {"phase": "Pending", "conditions": _conditions(False, False, now, text), "startTime": now}
    if mode == "pending":
        state = {"waiting": {"reason": "ContainerCreating"}}
        return {"phase": "Pending", "conditions": _conditions(True, False, now), "startTime": now,
                "containerStatuses": [_container(name, state, ready=False)]}
    if mode == "crashloop":
        waiting = {"waiting": {"reason": "CrashLoopBackOff",
                               "message": f"back-off 40s restarting failed container={name} pod={pod['metadata']['name']}"}}
        last = {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message}}
        return {"phase": "Running", "podIP": ip, "hostIP": "10.0.0.1", "conditions": _conditions(True, False, now),
                "startTime": now, "containerStatuses": [_container(name, waiting, False, restarts=3, last=last)]}
    ready = mode == "ready"
    return {"phase": "Running", "podIP": ip, "hostIP": "10.0.0.1", "conditions": _conditions(True, ready, now),
            "startTime": now, "containerStatuses": [_container(name, {"running": {"startedAt": now}}, ready=ready)]}


def _ready(pod: Manifest) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def deployment_status(deployment: Manifest, pods: list[Manifest], want: str) -> Manifest:
    """What the Deployment controller reports for these pods."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    ready = sum(1 for p in live if _ready(p))
    updated = sum(1 for p in live if (p["metadata"].get("annotations") or {}).get(HASH) == want)
    replicas = int(deployment["spec"].get("replicas", 1))
    available = ready >= replicas
    return {"observedGeneration": deployment["metadata"].get("generation", 1), "replicas": len(live),
            "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
            "conditions": [{"type": "Available", "status": "True" if available else "False",
                            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable"},
                           {"type": "Progressing", "status": "True",
                            "reason": "NewReplicaSetAvailable" if available else "ReplicaSetUpdated"}]}


def _target_port(service_port: Manifest, pod: Manifest, port_annotation: str) -> int:
    local = (pod["metadata"].get("annotations") or {}).get(port_annotation)
    if local:
        return int(local)
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod["spec"]["containers"]:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return int(service_port["port"])


def endpoint_slices(service: Manifest, pods: list[Manifest], port_annotation: str) -> list[Manifest]:
    """EndpointSlices of a Service: one per distinct target port (process-mode pods each have their own)."""
    by_port: dict[int, list[Manifest]] = {}
    ports = (service.get("spec") or {}).get("ports") or []
    if not ports:
        return []
    for pod in pods:
        by_port.setdefault(_target_port(ports[0], pod, port_annotation), []).append(pod)
    name = service["metadata"]["name"]
    out = []
    for port, members in sorted(by_port.items()):
        endpoints = [{"addresses": [p["status"]["podIP"]],
                      "conditions": {"ready": _ready(p), "serving": _ready(p), "terminating": False},
                      "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"],
                                    "uid": p["metadata"]["uid"]}} for p in members]
        out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{name}-{port}", "namespace": service["metadata"]["namespace"],
                                 "labels": {"kubernetes.io/service-name": name,
                                            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                                 "ownerReferences": [_owner(service)]},
                    "addressType": "IPv4", "endpoints": endpoints,
                    "ports": [{"name": ports[0].get("name", ""), "port": port, "protocol": "TCP"}]})
    return out
