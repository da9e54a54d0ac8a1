"""kopf handlers, kept thin: every one of them hands over to `reconciler.Reconciler`.

Handlers are attached to a registry passed in (no import-time registration, no globals), so the
CLI entrypoint and tests can each run their own operator. Dependencies live on the kopf memo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
import llmserver_api
import pydantic

from llmserver_operator import kube as kube_mod
from llmserver_operator import metrics as metrics_mod
from llmserver_operator import model_claims
from llmserver_operator import reconciler as reconciler_mod
from llmserver_operator import retries, server_locks, triggers, watch_cache
from llmserver_operator import settings as settings_mod
from llmserver_operator.apple import adapter_events as apple_adapter_events
from llmserver_operator.apple import handlers as apple_handlers
from llmserver_operator.autoscaler import gateways as autoscaler_gateways
from llmserver_operator.autoscaler import loop as autoscaler_loop
from llmserver_operator.builders import common

LOG = logging.getLogger(__name__)
OURS = {"app.kubernetes.io/managed-by": common.MANAGED_BY}
# Children whose changes (and deletions) re-trigger their LLMServer, with the labels that select
# them server-side: a deleted or edited child is repaired within seconds. Download pods are left
# out: their Job's own status change follows every change that matters.
CHILD_RESOURCES = (
    ("batch", "v1", "jobs", OURS),
    ("apps", "v1", "deployments", OURS),
    ("", "v1", "pods", {**OURS, "app.kubernetes.io/component": "runtime"}),
    ("", "v1", "services", OURS),
    ("networking.k8s.io", "v1", "networkpolicies", OURS),
    ("", "v1", "serviceaccounts", OURS),
    ("rbac.authorization.k8s.io", "v1", "roles", OURS),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", OURS),
    ("", "v1", "persistentvolumeclaims", OURS),
)
# The kinds the reconciler reads from the watch cache instead of the API (watch_cache.py).
CACHED_KINDS = ("LLMServer", "Job", "Deployment", "Pod", "Service", "NetworkPolicy", "ServiceAccount", "Role",
                "RoleBinding", "PersistentVolumeClaim")
# The Mac's EndpointSlice `N-apple` (only ours: the EndpointSlice controller's slices copy the
# Service's labels, and every pod IP change would re-trigger the server).
APPLE_CHILD_RESOURCES = (
    ("discovery.k8s.io", "v1", "endpointslices", {**OURS, "endpointslice.kubernetes.io/managed-by": common.MANAGED_BY}),
)


def make_memo(settings: settings_mod.Settings) -> kopf.Memo:
    """The operator's dependencies, built once in the entrypoint (or a test) before kopf starts."""
    config = kube_mod.configuration(settings.kubeconfig, pool_size=settings.workers)
    metrics = metrics_mod.OperatorMetrics()
    cache = watch_cache.WatchCache(CACHED_KINDS)
    kube = kube_mod.Kube(config, observe=metrics.api_request, cache=cache)
    claims = model_claims.ModelClaims()
    service = autoscaler_gateways.ServiceRef.parse(settings.gateway_service) if settings.gateway_service else None
    return kopf.Memo(
        settings=settings,
        autoscaler=autoscaler_loop.Autoscaler(kube, cache, metrics, service,
                                              interval=settings.autoscale_interval_seconds,
                                              timeout=settings.autoscale_timeout_seconds),
        autoscaler_task=None,
        kube_config=config,
        cache=cache,
        metrics=metrics,
        claims=claims,
        reconciler=reconciler_mod.Reconciler(kube, settings, metrics=metrics, post_event=post_event, claims=claims),
        server_locks=server_locks.ServerLocks(),
        essences={},  # (namespace, name) -> the last triggers.essence seen of each LLMServer
        mac_adapter_events=apple_adapter_events.MacAdapterEvents(),
        retries=retries.Retries(base=min(1.0, settings.retry_delay_seconds), cap=10 * settings.retry_delay_seconds),
    )


def _served_model(body: kopf.Body) -> str | None:
    """spec.model of a valid LLMServer (an invalid one is routed by no gateway: it claims nothing)."""
    try:
        return llmserver_api.LLMServer.model_validate(dict(body)).spec.model
    except pydantic.ValidationError:
        return None


def _plain(body: kopf.Body) -> dict[str, Any]:
    """The event's object as plain dicts (the cache copies it)."""
    return {key: body[key] for key in body}


def post_event(body: dict[str, Any], type: str, reason: str, message: str) -> None:
    """A Kubernetes Event on the LLMServer through kopf's poster; silently nothing outside kopf."""
    try:
        kopf.event(body, type=type, reason=reason, message=message)
    except LookupError:  # no kopf context (a test driving the reconciler directly)
        LOG.info(f"event {type} {reason}: {message}")


def register(registry: kopf.OperatorRegistry, apple: bool = True) -> None:
    """Attaches every handler of the operator to `registry` (the Mac handlers only when `apple`)."""
    if apple:
        apple_handlers.register(registry, lease_check_seconds=2.0)
    children = CHILD_RESOURCES + (APPLE_CHILD_RESOURCES if apple else ())

    @kopf.on.startup(registry=registry, id="configure")
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        ours: settings_mod.Settings = memo.settings
        settings.posting.level = logging.WARNING  # events for problems only: a resync writes nothing
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=llmserver_api.GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=llmserver_api.GROUP, key="last-handled-configuration")
        settings.scanning.disabled = True
        settings.execution.max_workers = ours.workers
        # a hung API server fails a request instead of blocking; a silent watch is re-established
        settings.networking.connect_timeout = 10.0
        settings.networking.request_timeout = 60.0
        settings.watching.connect_timeout = 10.0
        settings.watching.server_timeout = 600.0
        settings.watching.client_timeout = 660.0
        for group, version, plural, labels in children:  # watch only our children
            settings.watching.label_selectors[group or "v1", plural] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    @kopf.on.startup(registry=registry, id="metrics")
    def serve_metrics(memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
        ours: settings_mod.Settings = memo.settings
        if not ours.metrics_port:
            return
        try:
            port = memo.metrics.serve(ours.metrics_address, ours.metrics_port)
        except OSError as exc:  # a taken port is a configuration error: fail the start, visibly
            raise kopf.PermanentError(f"metrics endpoint {ours.metrics_address}:{ours.metrics_port}: {exc}") from None
        logger.info(f"serving Prometheus metrics on {ours.metrics_address}:{port}/metrics")

    @kopf.on.cleanup(registry=registry, id="metrics")
    def stop_metrics(memo: kopf.Memo, **_: Any) -> None:
        memo.metrics.close()
        memo.retries.close()

    # kopf runs only on the replica holding the leader Lease (leader.py): one autoscaler scales
    @kopf.on.startup(registry=registry, id="autoscaler")
    async def start_autoscaler(memo: kopf.Memo, **_: Any) -> None:
        memo.autoscaler_task = asyncio.create_task(memo.autoscaler.run(), name="autoscaler")

    @kopf.on.cleanup(registry=registry, id="autoscaler")
    async def stop_autoscaler(memo: kopf.Memo, **_: Any) -> None:
        task, memo.autoscaler_task = memo.autoscaler_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @kopf.on.login(registry=registry, id="login")
    def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo | None:
        config = memo.kube_config
        if memo.settings.kubeconfig is None and config.host.startswith("https://kubernetes.default"):
            return kopf.login_with_service_account()
        return kopf.ConnectionInfo(
            server=config.host,
            ca_path=config.ssl_ca_cert,
            insecure=not config.verify_ssl,
            scheme="Bearer",
            token=kube_mod.bearer_token(config),
            certificate_path=config.cert_file,
            private_key_path=config.key_file,
        )

    # kopf runs indexing handlers for every event before any other handler, and starts no other
    # handler before every indexed kind's initial listing is in: passes read a complete cache.
    @kopf.index(llmserver_api.GROUP, llmserver_api.VERSION, "llmservers", registry=registry, id="seen-llmservers")
    async def server_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:  # async: no thread hop
        memo.cache.store(_plain(body))

    @kopf.on.event(llmserver_api.GROUP, llmserver_api.VERSION, "llmservers", registry=registry, id="forget")
    def server_event(type: str | None, body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
        if type == "DELETED":  # after any reconcile of it still running: it must not count afterwards
            memo.cache.forget(_plain(body))
            memo.server_locks.run((namespace, name), lambda: memo.metrics.server_deleted(namespace, name))
            memo.retries.succeeded((namespace, name))
            memo.essences.pop((namespace, name), None)
            memo.autoscaler.forget(namespace, name)
        else:
            memo.autoscaler.seen(body)
        for happened in memo.mac_adapter_events.observe((namespace, name), body, type):
            post_event(_plain(body), happened.type, happened.reason, happened.message)
        # Every server's model name, from the events already watched (no list calls): a changed
        # claim re-checks the servers sharing its old or new name (ModelNameConflict comes and goes).
        gone = type == "DELETED" or body.metadata.get("deletionTimestamp")
        created = str(body.metadata.get("creationTimestamp") or "")
        for rival_namespace, rival in sorted(memo.claims.record(namespace, name, None if gone else _served_model(body),
                                                                created)):
            triggers.reconcile(memo, rival_namespace, rival, coalesce=True)
        # The initial listing (a resume), a new server, a new spec, labels or annotations, a deletion:
        # a pass, after its claim is recorded. Status writes (ours, the downloader's progress) are not
        # changes. Driven from events, kopf keeps no progress or last-handled annotations: no patches.
        if type != "DELETED" and memo.essences.get((namespace, name)) != (now := triggers.essence(body)):
            memo.essences[(namespace, name)] = now
            triggers.reconcile(memo, namespace, name, coalesce=True)  # retried by us, never by kopf

    for group, version, plural, labels in children:

        @kopf.index(group, version, plural, labels=labels, registry=registry, id=f"seen-{plural}")
        async def child_seen(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:  # a dict copy: no thread hop
            memo.cache.store(_plain(body))

        @kopf.on.event(group, version, plural, labels=labels, registry=registry, id=f"child-{plural}")
        def child_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
            if type == "DELETED":
                memo.cache.forget(_plain(body))
            owner = body.metadata.labels.get(common.SERVER_LABEL)
            # None: the initial listing (every LLMServer is resumed anyway). ADDED: the echo of a create
            # (ours, or a pod's by its ReplicaSet) that tells nothing new until its status is written.
            # DELETED (and MODIFIED) repair drift: a deleted Service is back within one pass.
            if type in (None, "ADDED") or not owner or body.metadata.namespace is None:
                return
            triggers.reconcile(memo, body.metadata.namespace, owner, coalesce=True)
