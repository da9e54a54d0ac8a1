"""Leader election over a coordination.k8s.io Lease: any number of operator replicas, one reconciling.

Why not kopf peering: peers of equal priority all pause as soon as they see each other, so two
replicas freeze instead of failing over (kopf's docs, "Peering"). This is client-go's election
instead: a candidate takes the Lease when it is free or when it has seen no renewal for the
Lease's duration, measured on its OWN monotonic clock from the moment it saw the Lease change
(lease_clock.RenewalClock: replicas' wall clocks may disagree); writes are guarded by the Lease's
resourceVersion, so two candidates never both win. Only the holder runs kopf (`lead`). The holder
renews every retry period; when it cannot renew for the renew deadline (shorter than the lease
duration, so it stops before anyone may take over) it stops kopf and the process exits non-zero,
to be restarted as a candidate. A holder stopped on purpose releases the Lease, so a rolling
update hands over at once.

While it waits, a candidate answers the liveness endpoint itself (kopf, which serves it for the
leader, is not running yet), so the kubelet does not restart waiting replicas.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.server
import logging
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from llmserver_operator import kube as kube_mod
from llmserver_operator import lease_clock
from llmserver_operator import settings as settings_mod

LOG = logging.getLogger(__name__)
Manifest = dict[str, Any]


def _micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class Election:
    """Which Lease, who we are, and the timings (client-go's defaults: 15 s, 10 s, 2 s)."""

    namespace: str
    name: str
    identity: str
    lease_seconds: int = 15
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    @classmethod
    def of(cls, settings: settings_mod.Settings) -> Election:
        """The election the operator's settings describe (identity: the pod's name and a random suffix,
        so a restarted container is a new candidate)."""
        return cls(namespace=settings.leader_election_namespace, name=settings.leader_election_lease_name,
                   identity=settings.leader_election_identity, lease_seconds=settings.leader_election_lease_seconds,
                   renew_deadline_seconds=settings.leader_election_renew_deadline_seconds,
                   retry_seconds=settings.leader_election_retry_seconds)


class LeaderElector:
    """Acquires, renews and releases the Lease; thread-safe enough for one holder thread."""

    def __init__(self, kube: kube_mod.Kube, election: Election, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)) -> None:
        self.kube = kube
        self.election = election
        self.monotonic = monotonic
        self.wall = wall
        self.renewals = lease_clock.RenewalClock()
        self.holder: str | None = None  # the holder seen on the last attempt

    def _spec(self, previous: Manifest | None) -> Manifest:
        now = _micro_time(self.wall())
        old = (previous or {}).get("spec") or {}
        ours = old.get("holderIdentity") == self.election.identity
        return {"holderIdentity": self.election.identity, "leaseDurationSeconds": self.election.lease_seconds,
                "acquireTime": old.get("acquireTime", now) if ours else now, "renewTime": now,
                "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if ours or not old else 1)}

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when we hold the Lease afterwards. API errors and lost races are False."""
        e = self.election
        try:
            lease = self.kube.get("Lease", e.namespace, e.name)
            if lease is None:
                self.kube.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                  "metadata": {"name": e.name, "namespace": e.namespace}, "spec": self._spec(None)})
                self.holder = e.identity
                return True
            spec = lease.get("spec") or {}
            self.holder = spec.get("holderIdentity") or None
            silence = self.renewals.observe(e.name, lease, self.monotonic())
            duration = float(spec.get("leaseDurationSeconds") or e.lease_seconds)
            if self.holder not in (None, e.identity) and silence.seconds <= duration:
                return False  # held by another replica that renewed within its duration (on our clock)
            self.kube.replace({**lease, "spec": self._spec(lease)})
        except kube_mod.ApiError as exc:  # 409: another candidate won the race; else the API is away
            LOG.debug(f"leader lease {e.namespace}/{e.name}: {exc}")
            return False
        if self.holder != e.identity:
            LOG.info(f"took the leader lease {e.namespace}/{e.name} (previous holder: {self.holder or 'none'})")
        self.holder = e.identity
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Blocks until we hold the Lease (True) or `stop` is set (False)."""
        while not stop.is_set():
            if self.try_acquire_or_renew():
                return True
            stop.wait(self.election.retry_seconds * (1 + 0.2 * random.random()))
        return False

    def hold(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Renews every retry period until `stop`; calls `on_lost` (and returns) once another replica
        holds the Lease or no renewal succeeded for the renew deadline."""
        e = self.election
        renewed = self.monotonic()
        while not stop.wait(e.retry_seconds):
            if self.try_acquire_or_renew():
                renewed = self.monotonic()
                continue
            if self.holder not in (None, e.identity) or self.monotonic() - renewed > e.renew_deadline_seconds:
                LOG.error(f"lost the leader lease {e.namespace}/{e.name} (holder now: {self.holder or 'unknown'})")
                on_lost()
                return

    def release(self) -> None:
        """Gives the Lease up (when still ours) so a waiting replica takes over at once."""
        e = self.election
        try:
            lease = self.kube.get("Lease", e.namespace, e.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != e.identity:
                return
            spec = {key: value for key, value in lease["spec"].items() if key != "holderIdentity"}
            spec.update(leaseDurationSeconds=1, renewTime=_micro_time(self.wall()))
            self.kube.replace({**lease, "spec": spec})
            LOG.info(f"released the leader lease {e.namespace}/{e.name}")
        except kube_mod.ApiError as exc:
            LOG.warning(f"could not release the leader lease {e.namespace}/{e.name}: {exc}")


class CandidateHealth:
    """Answers 200 on the liveness endpoint while this replica waits (kopf serves it once leading)."""

    def __init__(self, endpoint: str | None) -> None:
        self._server: http.server.ThreadingHTTPServer | None = None
        if not endpoint:
            return
        url = urllib.parse.urlsplit(endpoint)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                body = b"waiting for the leader lease\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), Handler)
        threading.Thread(target=self._server.serve_forever, name="candidate-health", daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def lead(elector: LeaderElector, run: Callable[[threading.Event], None], stop: threading.Event,
         liveness_endpoint: str | None = None, exit_grace_seconds: float = 10.0,
         hard_exit: Callable[[int], None] = os._exit) -> bool:
    """Waits for the Lease, then `run(kopf_stop)` while holding it. Returns True after a clean stop
    (the Lease released); False when `stop` came before leadership. Raises SystemExit(1) when the
    Lease was lost; if `run` has not returned `exit_grace_seconds` after that, the process is ended
    (`hard_exit`), since another replica is about to reconcile."""
    health = CandidateHealth(liveness_endpoint)
    try:
        LOG.info(f"waiting for the leader lease {elector.election.namespace}/{elector.election.name} "
                 f"as {elector.election.identity}")
        if not elector.acquire(stop):
            return False
    finally:
        health.close()
    kopf_stop, lost, holding_done = threading.Event(), threading.Event(), threading.Event()

    def on_lost() -> None:
        lost.set()
        kopf_stop.set()
        if not holding_done.wait(exit_grace_seconds):
            LOG.error("the operator did not stop after losing the leader lease: exiting")
            hard_exit(1)

    holder = threading.Thread(target=elector.hold, args=(holding_done, on_lost), name="leader-lease", daemon=True)
    holder.start()
    try:
        run(kopf_stop)
    finally:
        holding_done.set()
        holder.join(exit_grace_seconds + elector.election.retry_seconds + 5)
    if lost.is_set():
        raise SystemExit("lost the leader lease: exiting so that this replica restarts as a candidate")
    elector.release()
    return True
