"""A whole fake cluster for tests: API emulator + kubelet simulator + the real operator.

Usage::

    with fake_cluster.FakeCluster(models_dir=path) as cluster:
        cluster.kubelet.set_pod_mode("tiny", "process", namespace="demo")
        cluster.apply_server("tiny", "demo", model="tiny", backend="llama-cpp",
                             source={"huggingFace": {"repo": "acme/tiny", "file": "m.gguf"}})
        cluster.wait_phase("tiny", "Ready", "demo")
        cluster.kube.list("discovery.k8s.io/v1", "EndpointSlice", "demo")   # 127.0.0.1:<port> in process mode
        cluster.restart_operator()
"""

from __future__ import annotations

from typing import Any, Self

from testkit import emulator, kubelet, operator_thread

LLMS = "serving.llmserver.dev/v1alpha1"


class FakeCluster:
    """Starts the three parts in order and stops them in reverse."""

    def __init__(self, models_dir: str | None = None, jobs: str = "succeed", pods: str = "ready", **settings: Any) -> None:
        settings.setdefault("retry_delay_seconds", 0.5)
        self.kube = emulator.KubeEmulator(crds=emulator.project_crds())
        self._kubelet_args = {"jobs": jobs, "pods": pods, "models_dir": models_dir}
        self._settings = settings
        self.kubelet: kubelet.Kubelet | None = None
        self.operator: operator_thread.OperatorThread | None = None

    def start(self) -> FakeCluster:
        """Emulator, then kubelet, then operator (ready to reconcile when this returns)."""
        self.kube.start()
        self.kubelet = kubelet.Kubelet(self.kube, **self._kubelet_args).start()
        self.start_operator()
        return self

    def start_operator(self) -> operator_thread.OperatorThread:
        """Starts (another) operator instance against the emulator."""
        self.operator = operator_thread.OperatorThread(self.kube.kubeconfig, **self._settings).start()
        return self.operator

    def stop_operator(self) -> None:
        """Stops the running operator instance, if any."""
        if self.operator is not None:
            self.operator.stop()
            self.operator = None

    def restart_operator(self) -> operator_thread.OperatorThread:
        """Stops the operator and starts a new one, as a pod restart would."""
        self.stop_operator()
        return self.start_operator()

    def stop(self) -> None:
        """Operator, kubelet (and its processes), then the emulator."""
        try:
            self.stop_operator()
        finally:
            if self.kubelet is not None:
                self.kubelet.stop()
            self.kube.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- LLMServers ------------------------------------------------------------------------
    def apply_server(self, name: str, namespace: str = "default", labels: dict[str, str] | None = None,
                     **spec: Any) -> dict[str, Any]:
        """Creates the LLMServer, or replaces the spec of an existing one (like kubectl apply)."""
        existing = self.server(name, namespace)
        if existing is None:
            return self.kube.create({"apiVersion": LLMS, "kind": "LLMServer",
                                     "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": spec})
        replaced = {**existing, "spec": spec}
        return self.kube.store.replace(self.kube.store.by_kind(LLMS, "LLMServer"), namespace, name, replaced)

    def server(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        """The LLMServer, or None."""
        return self.kube.get(LLMS, "LLMServer", name, namespace)

    def status(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """Its status ({} before the operator wrote one)."""
        return (self.server(name, namespace) or {}).get("status") or {}

    def condition(self, name: str, kind: str, namespace: str = "default") -> dict[str, Any]:
        """One condition of its status ({} when absent)."""
        return next((c for c in self.status(name, namespace).get("conditions") or [] if c["type"] == kind), {})

    def wait_phase(self, name: str, phase: str, namespace: str = "default", timeout: float = 30.0) -> dict[str, Any]:
        """Waits until status.phase is `phase` and reflects the current generation; returns the status."""
        def reached() -> dict[str, Any] | None:
            server = self.server(name, namespace) or {}
            status = server.get("status") or {}
            current = status.get("observedGeneration") == (server.get("metadata") or {}).get("generation")
            return status if status.get("phase") == phase and current else None

        try:
            return self.kube.wait_for(reached, timeout)
        except TimeoutError:
            raise TimeoutError(f"{namespace}/{name} did not reach {phase}; status: {self.status(name, namespace)}") from None
