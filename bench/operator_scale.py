"""Operator scale benchmark: N LLMServers against the API emulator (with the kubelet simulator).

Measures, in one run:
- baseline: one plain client writing the same objects the operator writes (every child of every
  server plus one status write each) to a fresh emulator: the cost of the writes alone;
- the operator: seconds from the first LLMServer created until every child exists and every
  server is Ready, and the operator process's peak RSS (the emulator runs in another process);
- a resync: the operator restarted over the settled cluster; the API writes it makes (goal 0).

Last line: `servers=N seconds=S rss_mb=M noop_writes=W`. Bounded: --timeout seconds per phase.
Run: python bench/operator_scale.py [--servers 1000] [--namespaces 20] [--timeout 900]
"""

from __future__ import annotations

import argparse
import collections
import logging
import multiprocessing
import multiprocessing.connection
import resource
import sys
import time
from typing import Any

import llmserver_api
from llmserver_operator import kube as kube_mod
from llmserver_operator import reconciler as reconciler_mod
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import plan

LLMS = "serving.llmserver.dev/v1alpha1"


def serve(conn: multiprocessing.connection.Connection, with_kubelet: bool) -> None:
    """Child process: the emulator (and kubelet simulator), answering commands over `conn`."""
    sys.path.insert(0, "tests")
    from testkit import emulator, kubelet

    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        sim = kubelet.Kubelet(kube, endpoint_slices=False).start() if with_kubelet else None
        conn.send(kube.kubeconfig)
        while True:
            command = conn.recv()
            if command == "writes":
                conn.send(len(kube.writes()))
            elif command == "cpu":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                conn.send(usage.ru_utime + usage.ru_stime)
            elif command == "idle":
                if sim is not None:
                    sim.idle(timeout=600)
                conn.send(True)
            elif command == "stop":
                if sim is not None:
                    sim.stop()
                conn.send(True)
                return


class Emulator:
    """Handle on an emulator child process."""

    def __init__(self, with_kubelet: bool) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=serve, args=(child, with_kubelet), daemon=True)
        self.process.start()
        self.kubeconfig: str = self.conn.recv()

    def ask(self, command: str) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self.process.join(30)


def spec(index: int) -> dict[str, Any]:
    return {"model": f"model-{index}", "backend": "llama-cpp",
            "source": {"huggingFace": {"repo": f"acme/model-{index}", "file": "m.gguf"}}}


def server_body(index: int, namespaces: int) -> dict[str, Any]:
    return {"apiVersion": LLMS, "kind": "LLMServer",
            "metadata": {"name": f"s{index}", "namespace": f"bench-{index % namespaces}"}, "spec": spec(index)}


def baseline(servers: int, namespaces: int) -> float:
    """Seconds for one client to write what the operator writes (children + a status), no logic."""
    emulator = Emulator(with_kubelet=False)
    try:
        client = kube_mod.Kube(kube_mod.configuration(emulator.kubeconfig, pool_size=4))
        settings = settings_mod.Settings()
        started = time.monotonic()
        for index in range(servers):
            body = client.create(server_body(index, namespaces))
            server = llmserver_api.LLMServer.model_validate(body)
            for child in plan.all_children(server, settings):
                try:
                    client.create(child)
                except kube_mod.ApiError as exc:
                    if exc.status != 409:  # the shared cache claim
                        raise
            client.patch_status("LLMServer", body["metadata"]["namespace"], body["metadata"]["name"], {"phase": "Ready"})
        return time.monotonic() - started
    finally:
        emulator.stop()


def settled(client: kube_mod.Kube, servers: int) -> tuple[bool, str]:
    """Whether every server is Ready and every child exists, and a progress line.

    Children are only counted once every server is Ready: listing thousands of objects is
    itself load on the emulator, which this benchmark should not measure.
    """
    ready = sum(1 for s in client.list("LLMServer", None) if (s.get("status") or {}).get("phase") == "Ready")
    if ready < servers:
        return False, f"ready={ready}"
    counts = {kind: len(client.list(kind, None, {"app.kubernetes.io/managed-by": "llmserver-operator"}))
              for kind in ("Job", "Deployment", "Service", "ServiceAccount", "Role", "RoleBinding")}
    done = all(count == servers for count in counts.values())
    return done, f"ready={ready} " + " ".join(f"{kind.lower()}s={count}" for kind, count in counts.items())


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ok, progress = predicate()
        if ok:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}: {progress}")
        time.sleep(2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    sys.path.insert(0, "tests")
    logging.basicConfig(level=logging.ERROR)  # kopf's per-object INFO/WARNING lines are not the point here
    from testkit import operator_thread

    base = baseline(args.servers, args.namespaces)
    print(f"baseline: plain client wrote the same objects in {base:.1f}s", flush=True)

    emulator = Emulator(with_kubelet=True)
    client = kube_mod.Kube(kube_mod.configuration(emulator.kubeconfig, pool_size=4))
    operator = operator_thread.OperatorThread(emulator.kubeconfig).start()
    started, cpu_before, emulator_cpu_before = time.monotonic(), _cpu(), emulator.ask("cpu")
    for index in range(args.servers):
        client.create(server_body(index, args.namespaces))
    wait(lambda: settled(client, args.servers), args.timeout, "every server Ready")
    seconds = time.monotonic() - started
    cpu, emulator_cpu = _cpu() - cpu_before, emulator.ask("cpu") - emulator_cpu_before
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"operator: {args.servers} servers Ready with all children in {seconds:.1f}s "
          f"({seconds / base:.2f}x the baseline), peak RSS {rss_mb:.0f} MB", flush=True)
    print(f"cpu: operator process {1000 * cpu / args.servers:.0f} ms per server, emulator + kubelet "
          f"{1000 * emulator_cpu / args.servers:.0f} ms per server (2 shared cores: wall time is load-dependent)", flush=True)

    emulator.ask("idle")
    operator.stop()
    resumed: collections.Counter[tuple[str, str]] = collections.Counter()
    real = reconciler_mod.Reconciler.reconcile

    def counted(self: reconciler_mod.Reconciler, namespace: str, name: str) -> reconciler_mod.Outcome:
        outcome = real(self, namespace, name)
        resumed[(namespace, name)] += 1
        return outcome

    reconciler_mod.Reconciler.reconcile = counted  # type: ignore[method-assign]
    before = emulator.ask("writes")
    resync_started = time.monotonic()
    operator = operator_thread.OperatorThread(emulator.kubeconfig).start()
    wait(lambda: (len(resumed) >= args.servers, f"resumed={len(resumed)}"), args.timeout, "the resync")
    emulator.ask("idle")
    noop_writes = emulator.ask("writes") - before
    print(f"resync: {len(resumed)} servers re-reconciled in {time.monotonic() - resync_started:.1f}s, "
          f"{noop_writes} API writes", flush=True)
    operator.stop()
    emulator.stop()
    print(f"servers={args.servers} seconds={seconds:.1f} rss_mb={rss_mb:.0f} noop_writes={noop_writes}")


if __name__ == "__main__":
    main()
