"""`download-model --in-cluster`: a download Job that fills a cluster's model cache PVC before any
LLMServer asks for the model. It is the operator's own download Job (builders.download), minus
what only makes sense for an existing LLMServer: progress reporting to its status and the
per-server ServiceAccount allowed to do that."""

from __future__ import annotations

from typing import Any

import click

import llmserver_api
from llmserver_operator import settings as operator_settings
from llmserver_operator.builders import common, download
from llmserver_cli import cluster

PREWARM_NAME = "prewarm"


def _server(repo: str, file: str | None, revision: str, claim: str | None, token_secret: str | None, namespace: str) -> llmserver_api.LLMServer:
    hugging_face: dict[str, Any] = {"repo": repo, "revision": revision}
    if file:
        hugging_face["file"] = file
    if token_secret:
        name, _, key = token_secret.partition(":")
        hugging_face["tokenSecretRef"] = {"name": name, "key": key or "token"}
    spec: dict[str, Any] = {"model": "prewarm", "backend": "auto", "source": {"huggingFace": hugging_face}}
    if claim:
        spec["cache"] = {"claimName": claim}
    return llmserver_api.LLMServer.model_validate(
        {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer",
         "metadata": {"name": PREWARM_NAME, "namespace": namespace}, "spec": spec}
    )  # fmt: skip


def build_job(
    repo: str, file: str | None, revision: str, claim: str | None, token_secret: str | None, namespace: str,
    settings: operator_settings.Settings,
) -> dict[str, Any]:
    """The pre-warm Job (pure): `prewarm-download-<hash8>`, no status reporting, no API token."""
    try:
        server = _server(repo, file, revision, claim, token_secret, namespace)
    except ValueError as error:
        raise click.UsageError(f"REPO/--file/--revision/--claim/--token-secret: {error}") from None
    job = download.build_download_job(server, settings)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args: list[str] = container["args"]
    if "--report-to" in args:
        at = args.index("--report-to")
        del args[at : at + 2]
    pod.pop("serviceAccountName", None)
    pod["automountServiceAccountToken"] = False
    labels = {k: v for k, v in job["metadata"]["labels"].items() if k != common.SERVER_LABEL}
    labels["app.kubernetes.io/instance"] = job["metadata"]["name"]
    job["metadata"]["labels"] = labels
    job["spec"]["template"]["metadata"]["labels"] = dict(labels)
    job["spec"]["ttlSecondsAfterFinished"] = 3600
    return job


def create(
    api: cluster.Cluster, repo: str, file: str | None, revision: str, force: bool, claim: str | None, token_secret: str | None
) -> dict[str, Any]:
    """Creates the Job after checking the cache claim exists (else the pod would wait forever)."""
    if force:
        raise click.UsageError("--force is for the local cache; in a cluster delete the files on the PVC instead")
    settings = operator_settings.Settings()
    job = build_job(repo, file, revision, claim, token_secret, api.namespace, settings)
    claim_name = job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    if not api.claim_exists(claim_name):
        raise cluster.ClusterError(
            f"cache PVC {claim_name!r} not found in namespace {api.namespace!r}: apply an LLMServer first "
            "(the operator creates it) or pass --claim"
        )
    return api.create_job(job)
