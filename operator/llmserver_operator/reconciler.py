"""One reconcile of one LLMServer: observe, build, apply what differs, compute and write status.

Level-triggered and idempotent: it is run for LLMServer changes and for every change of a child,
and a pass over an LLMServer whose world already matches its spec makes no API writes (children
carry a hash of their desired content; status is only written when it changes). Deterministic
names make a pass interrupted by an operator restart safe to repeat: nothing is duplicated.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import time
from collections.abc import Callable
from typing import Any

import kopf
import llmserver_api
import pydantic
from llmserver_api import proxy_policy

from llmserver_operator import adapter_pass, adapter_status, events, images, model_claims, resolution, status, workloads
from llmserver_operator import children as children_mod
from llmserver_operator import kube as kube_mod
from llmserver_operator import metrics as metrics_mod
from llmserver_operator import settings as settings_mod
from llmserver_operator.apple import identity as apple_identity
from llmserver_operator.apple import publishing as apple_publishing
from llmserver_operator.apple import scheduler as apple_scheduler
from llmserver_operator.builders import adapters as adapter_builders
from llmserver_operator.builders import cache, common, deployment, network_policy, plan, service

Manifest = dict[str, Any]
# (LLMServer body, Event type, reason, message): how the reconciler tells a user what happened.
PostEvent = Callable[[Manifest, str, str, str], None]
# Every kind of child, in every mode; after a spec change whatever the new mode does not keep goes.
CHILD_KINDS = ("Deployment", "Service", "NetworkPolicy", "Job", "ServiceAccount", "Role", "RoleBinding",
               "EndpointSlice")
# Our own slice only: the EndpointSlice controller's slices carry the Service's labels too.
OWN_SLICES = {"EndpointSlice": {"endpointslice.kubernetes.io/managed-by": apple_publishing.SLICE_MANAGER}}
CONTROLLER_SLICES = "endpointslice-controller.k8s.io"
Conflict = children_mod.Conflict


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a pass ended with; `retry_after` asks for another pass (something outside our watches),
    `problem` says a child could not be written (reported in status; retried with backoff)."""

    phase: str | None
    retry_after: float | None = None
    problem: str | None = None


def utc_now() -> str:
    """The clock the status function is given (it has none of its own)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _succeeded(job: Manifest) -> bool:
    return bool((job.get("status") or {}).get("succeeded"))


def _kept(where: plan.Placement, server: llmserver_api.LLMServer) -> set[tuple[str, str]]:
    """The children a mode keeps besides its download children (the rest goes after a switch)."""
    name = common.name_of(server)
    if where == plan.Placement.KUBERNETES:
        return {("Deployment", name), ("Service", name), ("NetworkPolicy", name)}
    if where == plan.Placement.APPLE:
        grant = apple_identity.status_grant_name(server)
        return {("Service", name), ("EndpointSlice", apple_publishing.slice_name(server)), ("Role", grant),
                ("RoleBinding", grant)}
    return set()


class Reconciler:
    """Holds the API client and settings; `reconcile` is safe to call from many threads (per server: serialize)."""

    def __init__(self, kube: kube_mod.Kube, settings: settings_mod.Settings, clock: Callable[[], str] = utc_now,
                 metrics: metrics_mod.OperatorMetrics | None = None, post_event: PostEvent | None = None,
                 claims: model_claims.ModelClaims | None = None) -> None:
        self.kube = kube
        self.proxy_hosts = settings.proxy_policy()
        self.claims = claims  # who else serves each model name (the handlers record them); None: unchecked
        self.children = children_mod.Children(kube)
        self.post_event = post_event
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or metrics_mod.OperatorMetrics()
        self.apple = apple_scheduler.AppleScheduler(kube, settings)
        self.resolver = resolution.Resolver(kube)  # backend: auto, from the Hub (cached per repo)
        self.adapters = adapter_pass.AdapterPass(self)  # spec.adapters: downloads, live loads, status.adapters

    # --- entry points ----------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> Outcome:
        """Reads the LLMServer fresh and converges it; a deleted server is left to garbage collection."""
        started, result = time.perf_counter(), "error"
        try:
            raw = self.children.read("LLMServer", namespace, name)
            if raw is None or raw["metadata"].get("deletionTimestamp"):
                self.metrics.server_deleted(namespace, name)
                outcome = Outcome(None)
            else:
                outcome = self.reconcile_body(raw)
            result = "success" if outcome.retry_after is None else "retry"
            if outcome.problem is not None:  # a name taken by someone else is a conflict; a refused child an error
                result = "conflict" if outcome.problem.startswith("ChildConflict") else "error"
            return outcome
        except Conflict:
            result = "conflict"
            raise
        finally:
            self.metrics.reconciled(result, time.perf_counter() - started)

    def reconcile_body(self, raw: Manifest) -> Outcome:
        """Converges the children of this LLMServer body and writes its status if it changed."""
        meta = raw["metadata"]
        previous = raw.get("status") or {}
        before = copy.deepcopy(previous)  # the Mac scheduler updates `previous` as it writes placement
        generation = meta.get("generation")
        # children of an older spec can only exist once there was an older spec (generation 1 has none)
        spec_changed = previous.get("observedGeneration") != generation and generation != 1
        try:
            server = llmserver_api.LLMServer.model_validate(raw)
        except pydantic.ValidationError as exc:
            observed = status.Observed(invalid=status.describe_validation_error(exc.errors()))
            return self._finish(raw, None, observed)
        resolved = self.resolver.resolve(server)  # builders see the decided backend (resolution.py)
        if resolved.blocked:
            return self._finish(raw, server, status.Observed(invalid=resolved.blocked), resolved)
        server = resolved.server
        where = plan.placement(server.spec)
        image = deployment.runtime_image(server, self.settings) if where == plan.Placement.KUBERNETES else None
        try:
            if image is not None and image.image is None:  # no pod can run it: create none, say why
                if spec_changed:
                    self._remove_children(server, keep=set())
                observed = status.Observed(no_image=image.reason)
            elif where == plan.Placement.KUBERNETES:
                observed = self._converge_kubernetes(server, raw, spec_changed)
            elif where == plan.Placement.PROXY:
                if spec_changed:
                    self._remove_children(server, keep=set())
                observed = self._observe_proxy(server)
            else:
                if spec_changed:
                    self._remove_children(server, keep=_kept(where, server))
                observed = self._observe_apple(server, raw, previous)
                if spec_changed:  # from the cluster: the old pods' slices stay once the Service has no selector
                    self._remove_controller_slices(server)
        except children_mod.ChildProblem as exc:
            observed = status.Observed(child_problem=(exc.reason, exc.message))
        observed = dataclasses.replace(observed, model_conflict=self._model_conflict(server, meta),
                                       selector=status.label_selector(common.selector(server)))
        return self._finish(raw, server, observed, resolved, image, before)

    def _finish(self, raw: Manifest, server: llmserver_api.LLMServer | None, observed: status.Observed,
                resolved: resolution.Result | None = None, image: images.Choice | None = None,
                before: Manifest | None = None) -> Outcome:
        meta = raw["metadata"]
        computed = status.compute(
            spec=server.spec if server else None,
            generation=meta.get("generation"),
            previous=raw.get("status"),
            observed=observed,
            endpoint=self.settings.gateway_url.format(namespace=meta.get("namespace", "default")),
            now=self.clock(),
        )
        computed = resolution.with_resolved(computed, raw.get("status"), resolved, meta.get("generation"), self.clock(),
                                            server, image)
        if status.changed(raw.get("status"), computed) or resolution.changed(raw.get("status"), computed):
            try:
                self.kube.patch_status("LLMServer", meta.get("namespace"), meta["name"], computed)
            except kube_mod.ApiError as exc:
                if exc.status != 404:
                    raise
                self.metrics.server_deleted(meta.get("namespace") or "default", meta["name"])
                return Outcome(None)  # deleted meanwhile: nothing left to wait for
            self._post(raw, events.transitions(raw.get("status") if before is None else before, computed,
                                               observed.placement))
            if "adapters" in computed:
                before_adapters = (raw.get("status") or {}).get("adapters")
                self._post(raw, adapter_status.transitions(before_adapters, computed["adapters"]))
        failed_job = observed.job is not None and workloads.job_condition(observed.job, "Failed") is not None
        self.metrics.server_status(meta.get("namespace") or "default", meta["name"], computed["phase"], failed_job)
        # Secrets and claims are not watched: look again later (a label added to a Secret, too).
        waiting = any(c["reason"] in ("SecretNotFound", "SecretNotOptedIn", "ClaimNotFound")
                      for c in computed["conditions"])
        problem = f"{observed.child_problem[0]}: {observed.child_problem[1]}" if observed.child_problem else None
        delay = self.settings.retry_delay_seconds if waiting else None
        if observed.adapters_retry is not None:  # replicas still lack (or hold removed) adapters: backoff
            delay = min(delay or observed.adapters_retry, observed.adapters_retry)
        return Outcome(computed["phase"], delay, problem)

    def _post(self, raw: Manifest, happened: list[events.Happened]) -> None:
        for event in happened:
            if self.post_event is not None:
                self.post_event(raw, event.type, event.reason, event.message)

    # --- observation -----------------------------------------------------------------------
    def _secrets(self, namespace: str, *refs: llmserver_api.SecretKeyRef | None) -> dict[str, frozenset[str]]:
        """Which referenced Secrets exist and their key names (values are never read out)."""
        found: dict[str, frozenset[str]] = {}
        for ref in refs:
            if ref is None or ref.name in found:
                continue
            secret = self.kube.get("Secret", namespace, ref.name)
            if secret is not None:
                found[ref.name] = frozenset((secret.get("data") or {}).keys() | (secret.get("stringData") or {}).keys())
        return found

    def _observe_proxy(self, server: llmserver_api.LLMServer) -> status.Observed:
        """The literal URL against the Proxy host policy (the gateway checks resolved addresses
        too), then the key Secret: present, with its key, and opted in by its label. A refused URL
        reads no Secret."""
        proxy = server.spec.proxy
        if proxy is None:
            return status.Observed()
        refused = self.proxy_hosts.check_url(proxy.url)
        if refused is not None:
            return status.Observed(proxy_refused=refused)
        ref = proxy.api_key_secret_ref
        secret = self.kube.get("Secret", common.namespace_of(server), ref.name) if ref is not None else None
        if ref is None or secret is None:
            return status.Observed()
        keys = frozenset((secret.get("data") or {}).keys() | (secret.get("stringData") or {}).keys())
        labels = (secret.get("metadata") or {}).get("labels")
        return status.Observed(secrets={ref.name: keys}, proxy_secret_opted_in=proxy_policy.secret_opted_in(labels))

    def _model_conflict(self, server: llmserver_api.LLMServer, meta: Manifest) -> str | None:
        """The `namespace/name` of an older LLMServer serving the same model name, or None."""
        if self.claims is None:
            return None
        winner = self.claims.winner(common.namespace_of(server), meta["name"], server.spec.model,
                                    str(meta.get("creationTimestamp") or ""))
        return f"{winner.namespace}/{winner.name}" if winner else None

    def _observe_apple(self, server: llmserver_api.LLMServer, raw: Manifest, previous: Manifest) -> status.Observed:
        """Places the server on a Mac (or keeps it there) and publishes the Mac's endpoint."""
        if not self.settings.apple_enabled:
            return status.Observed(placement_problem="Mac placement is disabled in this installation (apple.enabled)")
        outcome = self.apple.reconcile(server, previous, apply=lambda desired: self.children.apply(desired, raw))
        return status.Observed(placement=outcome.placement, placement_ready=outcome.ready,
                               placement_problem=outcome.problem)

    # --- the Kubernetes path ---------------------------------------------------------------
    def _converge_kubernetes(self, server: llmserver_api.LLMServer, raw: Manifest, spec_changed: bool) -> status.Observed:
        settings, namespace, name = self.settings, common.namespace_of(server), common.name_of(server)
        source = server.spec.source
        assert source is not None
        keep = _kept(plan.Placement.KUBERNETES, server)
        job = None
        job_pods: list[Manifest] = []
        claim_found = True
        secrets: dict[str, frozenset[str]] = {}
        if source.pvc is None:  # huggingFace, s3 or url: downloaded by the Job
            job, job_pods, secrets = self._download(server, raw, keep)
            downloaded = job is not None and _succeeded(job)
        else:
            claim_found = self.children.exists("PersistentVolumeClaim", namespace, source.pvc.claim_name) if source.pvc else False
            downloaded = claim_found
        adapters_seen = self.adapters.downloads(server, raw, keep)
        if spec_changed:  # children of an older spec can only exist after a spec change
            self._remove_children(server, keep)
        current = self.children.read("Deployment", namespace, name)
        if downloaded:
            ready = frozenset(n for n, seen in adapters_seen.items() if seen.downloaded and seen.problem is None)
            argv = adapter_builders.argv_adapters(server, ready)  # restart engines: the downloaded ones
            current = self.apply(deployment.build_deployment(server, settings, argv), raw, current)
        self.apply(service.build_service(server, settings), raw)
        if (policy := network_policy.build_network_policy(server, settings)) is not None:
            self.apply(policy, raw)
        pods: list[Manifest] = []
        if current is not None:
            ready = int((current.get("status") or {}).get("readyReplicas") or 0)
            if ready < server.spec.replicas or current["metadata"].get("generation") != (current.get("status") or {}).get("observedGeneration"):
                pods = self.children.list("Pod", namespace, common.selector(server))
        served = self.adapters.served(server, adapters_seen, current, raw.get("status") or {})
        return status.Observed(secrets=secrets, claim_found=claim_found, job=job, job_pods=job_pods,
                               deployment=current, pods=pods, adapters=served.entries,
                               adapters_retry=served.retry_after)

    def _download(self, server: llmserver_api.LLMServer, raw: Manifest,
                  keep: set[tuple[str, str]]) -> tuple[Manifest | None, list[Manifest], dict[str, frozenset[str]]]:
        """The download Job (and what it needs). Once it has succeeded only the cache claim is looked
        at (a deleted claim took the model with it); its identity was ensured by the pass that created it."""
        children = plan.download_children(server, self.settings)  # the list `llmserver render` prints
        assert children is not None
        namespace = common.namespace_of(server)
        keep.update((obj["kind"], obj["metadata"]["name"]) for obj in children.in_apply_order())
        job = self.children.claim(self.children.read("Job", namespace, children.job["metadata"]["name"]), raw)
        if job is not None and _succeeded(job):
            claim = children.cache["metadata"]["name"]
            if self.children.exists("PersistentVolumeClaim", namespace, claim):
                return job, [], {}
            # the cache claim (and the model on it) is gone: download again onto a new claim
            self.kube.delete("Job", namespace, job["metadata"]["name"], uid=job["metadata"].get("uid"))
            job = None
        desired = self.children.prepared(children.job, raw)
        refs = [ref for ref, _ in status.download_secret_refs(server.spec.source)] if server.spec.source else []
        secrets = self._secrets(namespace, *refs)
        if any(status.secret_problem(ref, secrets, "") is not None for ref in refs):
            return job, [], secrets
        for identity in children.identity:
            self.children.apply(identity, raw)
        self._ensure_cache(server, children.cache, raw)
        job = self._ensure_job(desired, job, raw)
        job_pods = self.kube.list("Pod", namespace, {"job-name": job["metadata"]["name"]}) if (job.get("status") or {}).get("failed") else []
        return job, job_pods, secrets

    def _ensure_cache(self, server: llmserver_api.LLMServer, pvc: Manifest, raw: Manifest) -> None:
        """Creates the cache claim when missing; a shared claim is never patched or adopted later."""
        pvc = copy.deepcopy(pvc)
        if self.children.exists("PersistentVolumeClaim", pvc["metadata"]["namespace"], pvc["metadata"]["name"]):
            return
        if cache.owned_by_server(server):
            kopf.adopt(pvc, owner=raw)
        self.children.create(common.stamp_config_hash(pvc))  # a claim created meanwhile is as good

    def _ensure_job(self, desired: Manifest, current: Manifest | None, owner: Manifest) -> Manifest:
        """The Job's pod template is immutable: a failed Job whose desired content changed is recreated."""
        meta = desired["metadata"]
        if current is not None and children_mod.config_hash(current) != children_mod.config_hash(desired):
            failed_for_good = any(c.get("type") == "Failed" and c.get("status") == "True"
                                  for c in (current.get("status") or {}).get("conditions") or [])
            if failed_for_good:
                self.kube.delete("Job", meta["namespace"], meta["name"], uid=current["metadata"].get("uid"))
                current = None
        if current is not None:
            return current
        return self.children.create(desired, owner)

    def _remove_children(self, server: llmserver_api.LLMServer, keep: set[tuple[str, str]]) -> None:
        """Deletes children of ours this spec no longer has (old download Jobs, a mode's objects after a switch)."""
        labels = {common.SERVER_LABEL: common.name_of(server), "app.kubernetes.io/managed-by": common.MANAGED_BY}
        # without Macs no slice of ours exists (and the chart grants no list on EndpointSlices)
        kinds = CHILD_KINDS if self.settings.apple_enabled else tuple(k for k in CHILD_KINDS if k != "EndpointSlice")
        self.children.remove_others(common.namespace_of(server), labels, kinds, keep, OWN_SLICES)

    def _remove_controller_slices(self, server: llmserver_api.LLMServer) -> None:
        """The EndpointSlice controller's slices of Service `N`, left with dead pod IPs once it has no selector."""
        labels = {"kubernetes.io/service-name": common.name_of(server), "endpointslice.kubernetes.io/managed-by": CONTROLLER_SLICES}
        self.children.remove_others(common.namespace_of(server), labels, ("EndpointSlice",), keep=set())

    def apply(self, desired: Manifest, owner: Manifest, current: Manifest | None | bool = False) -> Manifest:
        """Create-or-replace one child of `owner` (see children.Children.apply)."""
        return self.children.apply(desired, owner, current)
