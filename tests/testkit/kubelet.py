"""A kubelet + controllers simulator for the API emulator: Jobs, Deployments, Pods, EndpointSlices.

It stands in for the parts of a cluster that turn the operator's objects into running things:

- Jobs get one pod and then succeed, fail (with a termination message) or stay running, per test:
  ``kubelet.set_job_outcome("succeed" | "fail" | "hold", message=..., name_prefix=...)``;
  a held Job is finished later with ``kubelet.finish_job(namespace, name, outcome, message)``.
- Deployments get `replicas` pods (a template change replaces them, scaling adds/removes), whose
  state follows the mode set per Deployment: ``kubelet.set_pod_mode(name, mode, message, namespace)``
  with mode "ready", "pending", "crashloop" (CrashLoopBackOff with `message` as the last
  termination message), "unschedulable" (PodScheduled=False, `message` as the scheduler's) or
  "process": the container's command really runs as a local process (testkit.kubelet_process):
  `--port` rewritten to a free loopback port, /models mapped to `models_dir`, env from the
  container and Secrets; the pod turns Ready once GET /ready answers 200, and its EndpointSlice
  carries 127.0.0.1:<that port>. Deployment status (replicas, ready, updated, conditions) follows.
  With ``kubelet.mount_models = True`` the process runs in its own mount namespace where
  `models_dir` is bind-mounted at a real /models (which must exist), so paths sent to it over
  HTTP (live adapter loads) resolve too; /models is then not rewritten.
- Services with a selector get EndpointSlices (label kubernetes.io/service-name) listing their pods.

Usage::

    with emulator.KubeEmulator(...) as kube, kubelet.Kubelet(kube, models_dir=path) as sim:
        sim.set_pod_mode("tiny", "process")
        ...
        sim.idle()   # waits until everything queued so far has been handled

Writes go straight to the emulator's store (no HTTP), so tests counting API writes see only
the operator's. Every process it starts is stopped by stop().
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
import time
from typing import Any, Self

from testkit import emulator, emulator_store, kubelet_pods, kubelet_process, ports

Manifest = dict[str, Any]
PORT = "kubelet.testkit/port"


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """What a Job's pod does: "succeed", "fail" (exit_code, message) or "hold" (keeps running)."""

    kind: str = "succeed"
    message: str = ""
    exit_code: int = 1


class Kubelet:
    """Reacts to emulator changes on one worker thread (process probes run on their own threads)."""

    def __init__(self, kube: emulator.KubeEmulator, jobs: str = "succeed", pods: str = "ready",
                 models_dir: str | None = None, endpoint_slices: bool = True, ready_timeout: float = 300.0) -> None:
        self.kube = kube
        self.store = kube.store
        self.models_dir = models_dir
        self.mount_models = False  # process mode: bind-mount models_dir at /models (root, unshare)
        self.endpoint_slices = endpoint_slices
        self.ready_timeout = ready_timeout
        self._job_rules: list[tuple[str | None, JobOutcome]] = [(None, JobOutcome(jobs))]
        self._modes: dict[tuple[str, str], tuple[str, str]] = {}
        self._default_mode = pods
        self.processes: dict[str, kubelet_process.LocalProcess] = {}
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._pending: set[tuple[Any, ...]] = set()
        self._lock = threading.Lock()
        self._ips = itertools.count(2)
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        self.cpu_seconds = 0.0  # CPU time of the worker thread: what simulating the cluster cost

    # --- control ---------------------------------------------------------------------------
    def set_job_outcome(self, kind: str, message: str = "", exit_code: int = 1, name_prefix: str | None = None) -> None:
        """Outcome for Jobs created from now on (those whose name starts with `name_prefix`, or all)."""
        self._job_rules.append((name_prefix, JobOutcome(kind, message, exit_code)))

    def finish_job(self, namespace: str, name: str, kind: str, message: str = "", exit_code: int = 1) -> None:
        """Ends a held Job now."""
        self._job_rules.append((name, JobOutcome(kind, message, exit_code)))
        self._enqueue(("Job", namespace, name))

    def set_pod_mode(self, deployment: str, mode: str, message: str = "", namespace: str = "default") -> None:
        """How the pods of one Deployment behave (see the module docstring)."""
        self._modes[(namespace, deployment)] = (mode, message)
        self._enqueue(("Deployment", namespace, deployment))

    def idle(self, timeout: float = 30.0) -> None:
        """Waits until the work queued so far is done."""
        done = threading.Event()
        self._queue.put(("Barrier", done))
        if not done.wait(timeout):
            raise TimeoutError("the kubelet simulator is still busy")

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Kubelet:
        """Subscribes to the store and starts the worker; existing objects are picked up too."""
        self.store.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._work, name="kubelet-sim", daemon=True)
        self._thread.start()
        for kind in ("Job", "Deployment"):
            for obj in self.kube.list(kubelet_pods.API[kind], kind):
                self._enqueue((kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))
        return self

    def stop(self) -> None:
        """Stops the worker and every local process."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(30)
        for process in list(self.processes.values()):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- plumbing --------------------------------------------------------------------------
    def _enqueue(self, item: tuple[Any, ...]) -> None:
        with self._lock:
            if item in self._pending:
                return
            self._pending.add(item)
        self._queue.put(item)

    def _on_event(self, event: emulator_store.Event) -> None:
        meta = event.obj["metadata"]
        kind, namespace = event.resource.kind, meta.get("namespace")
        if kind in ("Job", "Deployment") and event.resource.group in ("batch", "apps"):
            self._enqueue((kind, namespace, meta["name"]))
        elif kind == "Pod":
            if event.type == "DELETED":
                self._enqueue(("PodGone", namespace, meta["name"]))
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "Deployment":
                    self._enqueue(("Deployment", namespace, ref["name"]))
            self._enqueue(("Services", namespace))
        elif kind == "Service":
            self._enqueue(("Services", namespace))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item[0] == "Barrier":
                item[1].set()
                continue
            with self._lock:
                self._pending.discard(item)
            started = time.thread_time()
            try:
                getattr(self, f"_sync_{item[0].lower()}")(*item[1:])
            except emulator_store.ApiError as exc:
                if exc.code not in (404, 409):
                    self.errors.append(exc)
            except Exception as exc:  # noqa: BLE001 - kept for the test to inspect; the simulator keeps going
                self.errors.append(exc)
            finally:
                self.cpu_seconds += time.thread_time() - started

    def _job_outcome(self, name: str) -> JobOutcome:
        outcome = JobOutcome()
        for prefix, rule in self._job_rules:
            if prefix is None or name.startswith(prefix):
                outcome = rule
        return outcome

    def _set_status(self, api_version: str, kind: str, name: str, namespace: str, status: Manifest) -> None:
        """Replaces the whole status, as the owning controller does (a merge would keep stale fields)."""
        self.kube.patch(api_version, kind, name, [{"op": "add", "path": "/status", "value": status}], namespace,
                        subresource="status", content_type="application/json-patch+json")

    # --- Jobs ------------------------------------------------------------------------------
    def _sync_job(self, namespace: str, name: str) -> None:
        job = self.kube.get("batch/v1", "Job", name, namespace)
        if job is None or kubelet_pods.job_finished(job):
            return
        pods = self.kube.list("v1", "Pod", namespace, labels=f"job-name={name}")
        pod = pods[0] if pods else self.store.create(self._res("Pod"), namespace, kubelet_pods.job_pod(job))
        outcome = self._job_outcome(name)
        pod_status, job_status = kubelet_pods.job_statuses(job, outcome.kind, outcome.message, outcome.exit_code)
        self._set_status("v1", "Pod", pod["metadata"]["name"], namespace, pod_status)
        self._set_status("batch/v1", "Job", name, namespace, job_status)

    # --- Deployments -----------------------------------------------------------------------
    def _res(self, kind: str) -> emulator_store.Resource:
        return self.store.by_kind(kubelet_pods.API[kind], kind)

    def _sync_deployment(self, namespace: str, name: str) -> None:
        deployment = self.kube.get("apps/v1", "Deployment", name, namespace)
        if deployment is None:
            return
        uid, want = deployment["metadata"]["uid"], kubelet_pods.template_hash(deployment)
        owned = self._owned_pods(deployment)
        current = [p for p in owned if (p["metadata"].get("annotations") or {}).get(kubelet_pods.HASH) == want]
        replicas = int(deployment["spec"].get("replicas", 1))
        doomed = [p for p in owned if p not in current] + current[replicas:]
        for pod in doomed:
            self._stop_process(pod["metadata"]["name"])
            self.kube.delete("v1", "Pod", pod["metadata"]["name"], namespace)
        current = current[:replicas]
        for _ in range(replicas - len(current)):
            current.append(self.store.create(self._res("Pod"), namespace, kubelet_pods.deployment_pod(deployment, want)))
        mode, message = self._modes.get((namespace, name), (self._default_mode, ""))
        for pod in current:
            self._apply_mode(pod, mode, message)
        pods = self._owned_pods(deployment)
        self._set_status("apps/v1", "Deployment", name, namespace, kubelet_pods.deployment_status(deployment, pods, want))

    def _owned_pods(self, deployment: Manifest) -> list[Manifest]:
        """The Deployment's pods: the stored objects, uncopied (never mutated here), found through its
        selector: copying every pod of the namespace on each sync made the simulator cost O(pods²)."""
        meta, uid = deployment["metadata"], deployment["metadata"]["uid"]
        selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = ",".join(f"{key}={value}" for key, value in sorted(selector.items())) or None
        pods, _ = self.store.list(self._res("Pod"), meta["namespace"], labels, copied=False)
        return [p for p in pods if any(ref.get("uid") == uid for ref in p["metadata"].get("ownerReferences") or [])]

    def _apply_mode(self, pod: Manifest, mode: str, message: str) -> None:
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        if mode == "process":
            if name not in self.processes:
                self._start_process(pod)
            return
        self._stop_process(name)
        ip = (pod.get("status") or {}).get("podIP") or f"10.244.0.{next(self._ips) % 250 + 2}"
        status = kubelet_pods.pod_status(pod, mode, message, ip)
        self._set_status("v1", "Pod", name, namespace, status)

    def _start_process(self, pod: Manifest) -> None:
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        if self.models_dir is None:
            raise ValueError("process mode needs Kubelet(models_dir=...)")
        container = pod["spec"]["containers"][0]
        port = ports.free_port()
        workdir = kubelet_process.workdir(f"pod-{name}-")
        mapping = {"/tmp": workdir} if self.mount_models else {"/models": self.models_dir, "/tmp": workdir}
        argv = kubelet_process.command_line(container, port, mapping)
        if self.mount_models:
            argv = kubelet_process.with_models_mounted(argv, self.models_dir)

        def lookup(kind: str, obj_name: str, key: str) -> str | None:
            return kubelet_process.secret_value(self.kube.get("v1", kind, obj_name, namespace), key)

        self.processes[name] = kubelet_process.LocalProcess(
            argv,
            kubelet_process.environment(container, lookup, mapping),
            port, workdir,
            on_ready=lambda: self._enqueue(("PodReady", namespace, name)),
            on_exit=lambda code, log: self._queue.put(("PodExited", namespace, name, code, log)),
            ready_timeout=self.ready_timeout,
        )
        # Recorded before the writes below: each is a Pod event, and a sync that saw the pod without a
        # process would start a second one (and a third, ...).
        self.kube.patch("v1", "Pod", name, {"metadata": {"annotations": {PORT: str(port)}}}, namespace)
        self._set_status("v1", "Pod", name, namespace, kubelet_pods.pod_status(pod, "starting", "", "127.0.0.1"))

    def _sync_podready(self, namespace: str, name: str) -> None:
        pod = self.kube.get("v1", "Pod", name, namespace)
        if pod is not None:
            self._set_status("v1", "Pod", name, namespace, kubelet_pods.pod_status(pod, "ready", "", "127.0.0.1"))

    def _sync_podexited(self, namespace: str, name: str, code: int, log: str) -> None:
        pod = self.kube.get("v1", "Pod", name, namespace)
        if pod is not None:
            status = kubelet_pods.pod_status(pod, "crashloop", log.strip()[-1000:], "127.0.0.1", exit_code=code)
            self._set_status("v1", "Pod", name, namespace, status)

    def _sync_podgone(self, namespace: str, name: str) -> None:
        del namespace
        self._stop_process(name)

    def _stop_process(self, name: str) -> None:
        """Stops a pod's process; it leaves `processes` only once it has exited."""
        process = self.processes.get(name)
        if process is not None:
            process.stop()
            self.processes.pop(name, None)

    # --- Services --------------------------------------------------------------------------
    def _sync_services(self, namespace: str) -> None:
        if not self.endpoint_slices:
            return
        services, _ = self.store.list(self._res("Service"), namespace, copied=False)  # read only: no copies
        for service in services:
            selector = (service.get("spec") or {}).get("selector")
            if not selector:
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            matching, _ = self.store.list(self._res("Pod"), namespace, labels, copied=False)
            pods = [p for p in matching if (p.get("status") or {}).get("podIP")]
            desired = {s["metadata"]["name"]: s for s in kubelet_pods.endpoint_slices(service, pods, PORT)}
            existing = self.kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace,
                                      labels=f"kubernetes.io/service-name={service['metadata']['name']},"
                                             "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io")
            for old in existing:
                if old["metadata"]["name"] not in desired:
                    self.kube.delete("discovery.k8s.io/v1", "EndpointSlice", old["metadata"]["name"], namespace)
            for slice_name, body in desired.items():
                if any(old["metadata"]["name"] == slice_name for old in existing):
                    self.kube.patch("discovery.k8s.io/v1", "EndpointSlice", slice_name,
                                    {"endpoints": body["endpoints"], "ports": body["ports"]}, namespace)
                else:
                    self.store.create(self._res("EndpointSlice"), namespace, body)
