"""kopf handlers, kept thin: every one of them hands over to `reconciler.Reconciler`.

Handlers are attached to a registry passed in (no import-time registration, no globals), so the
CLI entrypoint and tests can each run their own operator. Dependencies live on the kopf memo.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
import llmserver_api

from llmserver_operator import kube as kube_mod
from llmserver_operator import metrics as metrics_mod
from llmserver_operator import reconciler as reconciler_mod
from llmserver_operator import server_locks
from llmserver_operator import settings as settings_mod
from llmserver_operator.apple import handlers as apple_handlers
from llmserver_operator.builders import common

OURS = {"app.kubernetes.io/managed-by": common.MANAGED_BY}
# Children whose changes re-trigger their LLMServer, with the labels that select them server-side.
# Download pods are left out: their Job's own status change follows every change that matters.
CHILD_RESOURCES = (
    ("batch", "v1", "jobs", OURS),
    ("apps", "v1", "deployments", OURS),
    ("", "v1", "pods", {**OURS, "app.kubernetes.io/component": "runtime"}),
)


def make_memo(settings: settings_mod.Settings) -> kopf.Memo:
    """The operator's dependencies, built once in the entrypoint (or a test) before kopf starts."""
    config = kube_mod.configuration(settings.kubeconfig, pool_size=settings.workers)
    metrics = metrics_mod.OperatorMetrics()
    kube = kube_mod.Kube(config, observe=metrics.api_request)
    return kopf.Memo(
        settings=settings,
        kube_config=config,
        metrics=metrics,
        reconciler=reconciler_mod.Reconciler(kube, settings, metrics=metrics),
        server_locks=server_locks.ServerLocks(),
    )


def _run(memo: kopf.Memo, namespace: str, name: str, coalesce: bool) -> reconciler_mod.Outcome | None:
    return memo.server_locks.run((namespace, name), lambda: memo.reconciler.reconcile(namespace, name), coalesce=coalesce)


def register(registry: kopf.OperatorRegistry, apple: bool = True) -> None:
    """Attaches every handler of the operator to `registry` (the Mac handlers only when `apple`)."""
    if apple:
        apple_handlers.register(registry, lease_check_seconds=2.0)

    @kopf.on.startup(registry=registry, id="configure")
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        ours: settings_mod.Settings = memo.settings
        settings.posting.level = logging.WARNING  # events for problems only: a resync writes nothing
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=llmserver_api.GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=llmserver_api.GROUP, key="last-handled-configuration")
        settings.scanning.disabled = True
        settings.execution.max_workers = ours.workers
        for group, version, plural, labels in CHILD_RESOURCES:  # watch only our children
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

    @kopf.on.resume(llmserver_api.GROUP, llmserver_api.VERSION, "llmservers", registry=registry, id="reconcile")
    @kopf.on.create(llmserver_api.GROUP, llmserver_api.VERSION, "llmservers", registry=registry, id="reconcile")
    @kopf.on.update(llmserver_api.GROUP, llmserver_api.VERSION, "llmservers", registry=registry, id="reconcile")
    def server_changed(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
        try:
            outcome = _run(memo, namespace, name, coalesce=False)
        except reconciler_mod.Conflict as exc:
            raise kopf.TemporaryError(str(exc), delay=2) from None
        except kube_mod.ApiError as exc:
            raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=5) from None
        if outcome is not None and outcome.retry_after is not None:
            raise kopf.TemporaryError(f"waiting ({outcome.phase})", delay=outcome.retry_after)

    @kopf.on.event(llmserver_api.GROUP, llmserver_api.VERSION, "llmservers", registry=registry, id="forget")
    def server_event(type: str | None, namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
        if type == "DELETED":  # after any reconcile of it still running: it must not count afterwards
            memo.server_locks.run((namespace, name), lambda: memo.metrics.server_deleted(namespace, name))

    for group, version, plural, labels in CHILD_RESOURCES:

        @kopf.on.event(group, version, plural, labels=labels, registry=registry, id=f"child-{plural}")
        def child_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
            owner = body.metadata.labels.get(common.SERVER_LABEL)
            # None: the initial listing (every LLMServer is resumed anyway). ADDED: the echo of a create
            # (ours, or a pod's by its ReplicaSet) that tells nothing new until its status is written.
            if type in (None, "ADDED") or not owner or body.metadata.namespace is None:
                return
            try:
                _run(memo, body.metadata.namespace, owner, coalesce=True)
            except (reconciler_mod.Conflict, kube_mod.ApiError) as exc:
                logger.info(f"reconcile of {owner} after a {body.kind} change will be retried: {exc}")
