"""Operator scale benchmark: N LLMServers against the API emulator (with the kubelet simulator).

Measures, in one run:
- baseline: one plain client writing the same objects the operator writes (every child of every
  server plus one status write each) to a fresh emulator: the cost of the writes alone;
- the operator: seconds from the first LLMServer created until every child exists and every
  server is Ready, and the operator process's peak RSS (the emulator runs in another process);
- a resync: the operator restarted over the settled cluster; the API writes it makes (goal 0);
- API calls: the emulator counts every request by verb and kind; the operator's calls per server
  (kopf's own and the reconciler's client apart) are printed by (verb, kind). LLMServers are
  created and progress is polled inside the emulator's process, so the counts are the operator's;
- CPU apart: operator process, the emulator serving the API, and the kubelet simulator's thread.

Last line: `servers=N seconds=S rss_mb=M noop_writes=W calls_per_server=C`. Bounded: --timeout
seconds per phase.
Run: python bench/operator_scale.py [--servers 1000] [--namespaces 20] [--timeout 900]
"""

from __future__ import annotations

import argparse
import collections
import logging
import multiprocessing
import multiprocessing.connection
import os
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


def _settled(kube: Any, servers: int) -> tuple[bool, str]:
    """Whether every server is Ready and every child exists, and a progress line (read in-process)."""
    store = kube.store
    llms = store.by_kind(LLMS, "LLMServer")
    ready = sum(1 for s in store.list(llms, copied=False)[0] if (s.get("status") or {}).get("phase") == "Ready")
    if ready < servers:
        return False, f"ready={ready}"
    counts = {}
    for api_version, kind in (("batch/v1", "Job"), ("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ServiceAccount"),
                              ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding")):
        items, _ = store.list(store.by_kind(api_version, kind), labels="app.kubernetes.io/managed-by=llmserver-operator",
                              copied=False)
        counts[kind] = len(items)
    done = all(count == servers for count in counts.values())
    return done, f"ready={ready} " + " ".join(f"{kind.lower()}s={count}" for kind, count in counts.items())


def serve(conn: multiprocessing.connection.Connection, with_kubelet: bool) -> None:
    """Child process: the emulator (and kubelet simulator), answering commands over `conn`."""
    sys.path.insert(0, "tests")
    from testkit import emulator, kubelet

    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        sim = kubelet.Kubelet(kube, endpoint_slices=False).start() if with_kubelet else None
        conn.send(kube.kubeconfig)
        while True:
            command, *args = conn.recv()
            if command == "create":  # the LLMServers, written in-process: no client calls to count
                servers, namespaces = args
                for index in range(servers):
                    kube.create(server_body(index, namespaces))
                conn.send(True)
            elif command == "settled":
                conn.send(_settled(kube, args[0]))
            elif command == "mark":
                conn.send(len(kube.requests))
            elif command == "calls":  # [(verb, kind, agent, count)] since a mark
                counted = collections.Counter((r.verb, r.kind, r.agent) for r in kube.requests[args[0]:] if r.verb)
                conn.send([(*key, count) for key, count in counted.items()])
            elif command == "cpu":  # (process CPU seconds, kubelet simulator thread CPU seconds)
                usage = resource.getrusage(resource.RUSAGE_SELF)
                conn.send((usage.ru_utime + usage.ru_stime, sim.cpu_seconds if sim is not None else 0.0))
            elif command == "idle":
                if sim is not None:
                    sim.idle(timeout=600)
                kube.gc.idle(timeout=600)
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

    def ask(self, command: str, *args: Any) -> Any:
        self.conn.send((command, *args))
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


WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def report_calls(calls: list[tuple[str, str, str, int]], servers: int, label: str) -> tuple[float, float]:
    """Prints calls per server by (verb, kind) and by client; returns (calls, writes) per server."""
    total = sum(count for *_, count in calls)
    writes = sum(count for verb, _, _, count in calls if verb in WRITE_VERBS)
    by_kind: collections.Counter[str] = collections.Counter()
    by_agent: collections.Counter[str] = collections.Counter()
    for verb, kind, agent, count in calls:
        by_kind[f"{verb} {kind}"] += count
        by_agent[agent or "?"] += count
    print(f"{label}: {total / servers:.2f} API calls per server ({writes / servers:.2f} writes); by client: "
          + ", ".join(f"{agent} {count / servers:.2f}" for agent, count in by_agent.most_common()), flush=True)
    print("  by verb and kind, per server: " + ", ".join(f"{key} {count / servers:.2f}"
                                                       for key, count in by_kind.most_common() if count / servers >= 0.01),
          flush=True)
    return total / servers, writes / servers


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
    operator = operator_thread.OperatorThread(emulator.kubeconfig).start()
    mark = emulator.ask("mark")
    started, cpu_before, (emulator_cpu_before, kubelet_cpu_before) = time.monotonic(), _cpu(), emulator.ask("cpu")
    emulator.ask("create", args.servers, args.namespaces)
    wait(lambda: emulator.ask("settled", args.servers), args.timeout, "every server Ready")
    seconds = time.monotonic() - started
    cpu = _cpu() - cpu_before
    emulator_cpu, kubelet_cpu = (after - before for after, before in zip(emulator.ask("cpu"), (emulator_cpu_before, kubelet_cpu_before)))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"operator: {args.servers} servers Ready with all children in {seconds:.1f}s "
          f"({seconds / base:.2f}x the baseline), peak RSS {rss_mb:.0f} MB", flush=True)
    per = 1000 / args.servers
    print(f"cpu per server: operator process {per * cpu:.0f} ms, emulator serving the API {per * (emulator_cpu - kubelet_cpu):.0f} ms, "
          f"kubelet simulator {per * kubelet_cpu:.0f} ms (2 shared cores: wall time is load-dependent; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})", flush=True)
    calls_per_server, _ = report_calls(emulator.ask("calls", mark), args.servers, "calls until settled")

    emulator.ask("idle")
    operator.stop()
    resumed: collections.Counter[tuple[str, str]] = collections.Counter()
    real = reconciler_mod.Reconciler.reconcile

    def counted(self: reconciler_mod.Reconciler, namespace: str, name: str) -> reconciler_mod.Outcome:
        outcome = real(self, namespace, name)
        resumed[(namespace, name)] += 1
        return outcome

    reconciler_mod.Reconciler.reconcile = counted  # type: ignore[method-assign]
    before = emulator.ask("mark")
    resync_started = time.monotonic()
    operator = operator_thread.OperatorThread(emulator.kubeconfig).start()
    wait(lambda: (len(resumed) >= args.servers, f"resumed={len(resumed)}"), args.timeout, "the resync")
    emulator.ask("idle")
    resync_calls = emulator.ask("calls", before)
    noop_writes = sum(count for verb, _, _, count in resync_calls if verb in WRITE_VERBS)
    print(f"resync: {len(resumed)} servers re-reconciled in {time.monotonic() - resync_started:.1f}s, "
          f"{noop_writes} API writes", flush=True)
    report_calls(resync_calls, args.servers, "calls of the resync")
    operator.stop()
    emulator.stop()
    print(f"servers={args.servers} seconds={seconds:.1f} rss_mb={rss_mb:.0f} noop_writes={noop_writes} "
          f"calls_per_server={calls_per_server:.1f}")


if __name__ == "__main__":
    main()
