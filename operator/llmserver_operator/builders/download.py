"""The download Job and its least-privilege identity.

The Job runs `llmserver-runtime download` (docs/contracts.md), which reports progress by patching
the LLMServer's status; its ServiceAccount may only get and patch `llmservers/status` of that one
LLMServer. The Job's name carries a hash of the source, so a new source means a new Job.
"""

from __future__ import annotations

import llmserver_api
from llmserver_api import paths

from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import common

Manifest = common.Manifest


def _source(server: llmserver_api.LLMServer) -> llmserver_api.llmserver.Source:
    source = server.spec.source
    if source is None or (source.hugging_face is None and source.s3 is None and source.url is None):
        raise ValueError("spec.source.huggingFace, s3 or url is required for a download")
    return source


def needs_download(server: llmserver_api.LLMServer) -> bool:
    """Hugging Face, S3 and URL sources are downloaded; a PVC source is used in place."""
    source = server.spec.source
    return source is not None and source.pvc is None and (
        source.hugging_face is not None or source.s3 is not None or source.url is not None
    )


def source_hash(server: llmserver_api.LLMServer) -> str:
    """8 hex chars identifying what is downloaded (repo, file, revision; bucket, key or prefix,
    endpoint; url and sha256), never the credentials. A Hub source hashes as it always did, so
    its Job keeps its name across operator upgrades."""
    source = _source(server)
    if source.hugging_face is not None:
        hf = source.hugging_face
        return common.digest({"file": hf.file, "repo": hf.repo, "revision": hf.revision}, length=8)
    if source.s3 is not None:
        s3 = source.s3
        return common.digest({"s3": {"bucket": s3.bucket, "endpoint": s3.endpoint, "key": s3.key,
                                     "prefix": s3.prefix, "region": s3.region}}, length=8)  # fmt: skip
    assert source.url is not None
    return common.digest({"url": {"sha256": source.url.sha256.lower(), "url": source.url.url}}, length=8)


def s3_uri(s3: llmserver_api.llmserver.S3Source) -> str:
    """`s3://bucket/key`, or `s3://bucket/prefix/` (the trailing '/' means: everything under it)."""
    return f"s3://{s3.bucket}/{s3.key}" if s3.key else f"s3://{s3.bucket}/{s3.prefix}/"


def job_name(server: llmserver_api.LLMServer) -> str:
    """`N-download-<hash8>`."""
    return f"{common.name_of(server)}-download-{source_hash(server)}"


def identity_name(server: llmserver_api.LLMServer) -> str:
    """Name shared by the download ServiceAccount, Role and RoleBinding."""
    return f"{common.name_of(server)}-download"


def build_download_service_account(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> Manifest:
    """The identity the download pod reports progress with."""
    del settings
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.metadata(server, identity_name(server), "download"),
        "automountServiceAccountToken": False,
    }


def build_download_role(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> Manifest:
    """get/patch on this one LLMServer's status subresource, nothing else."""
    del settings
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": common.metadata(server, identity_name(server), "download"),
        "rules": [
            {
                "apiGroups": [llmserver_api.GROUP],
                "resourceNames": [common.name_of(server)],
                "resources": ["llmservers/status"],
                "verbs": ["get", "patch"],
            }
        ],
    }


def build_download_role_binding(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> Manifest:
    """Binds the download Role to the download ServiceAccount."""
    del settings
    name = identity_name(server)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": common.metadata(server, name, "download"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": common.namespace_of(server)}],
    }


def source_args(source: llmserver_api.llmserver.Source) -> list[str]:
    """The downloader's source flags (docs/contracts.md); no secret ever appears here."""
    if source.s3 is not None:
        args = ["--s3", s3_uri(source.s3)]
        if source.s3.endpoint:
            args += ["--s3-endpoint", source.s3.endpoint]
        if source.s3.region:
            args += ["--s3-region", source.s3.region]
        return args
    if source.url is not None:
        return ["--url", source.url.url, "--sha256", source.url.sha256.lower()]
    hf = source.hugging_face
    assert hf is not None
    return ["--repo", hf.repo, *(["--file", hf.file] if hf.file else []), "--revision", hf.revision]


def download_args(server: llmserver_api.LLMServer) -> list[str]:
    """Arguments after `llmserver-runtime`; tokens and keys never appear here (they come through env)."""
    return [
        "download", *source_args(_source(server)),
        "--cache-dir", paths.CACHE_MOUNT,
        "--report-to", f"{common.namespace_of(server)}/{common.name_of(server)}",
    ]  # fmt: skip


def _secret_env(source: llmserver_api.llmserver.Source) -> dict[str, str | Manifest]:
    """The Hub token, or the S3 keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and an optional
    AWS_SESSION_TOKEN, same key names in the Secret), as env from the Secret."""
    if source.hugging_face is not None and source.hugging_face.token_secret_ref is not None:
        ref = source.hugging_face.token_secret_ref
        return {"HF_TOKEN": {"secretKeyRef": {"key": ref.key, "name": ref.name, "optional": False}}}
    if source.s3 is not None and source.s3.credentials_secret_ref is not None:
        name = source.s3.credentials_secret_ref.name
        return {
            key: {"secretKeyRef": {"key": key, "name": name, "optional": key == "AWS_SESSION_TOKEN"}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        }
    return {}


def build_download_job(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> Manifest:
    """Job `N-download-<hash8>`: retries with the Job's exponential backoff, resumes in the cache."""
    return build_source_job(server, settings, _source(server), job_name(server), download_args(server))


def build_source_job(server: llmserver_api.LLMServer, settings: settings_mod.Settings,
                     source: llmserver_api.llmserver.Source, name: str, args: list[str]) -> Manifest:
    """A download Job `name` running `llmserver-runtime ARGS` for `source` (the model's, or an
    adapter's: builders.adapters) onto the cache claim, as the download identity."""
    variables: dict[str, str | Manifest] = {
        "HF_HOME": "/tmp/huggingface",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HOME": "/tmp",
        **_secret_env(source),
    }
    claim = common.cache_claim_name(server, settings)
    labels = common.labels(server, "download")
    container: Manifest = {
        "name": "download",
        "image": settings.download_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["llmserver-runtime"],
        "args": args,
        "env": common.env(variables),
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
        "securityContext": common.container_security_context(read_only_root=True),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"mountPath": paths.CACHE_MOUNT, "name": common.CACHE_VOLUME},
            {"mountPath": "/tmp", "name": "tmp"},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": common.metadata(server, name, "download"),
        "spec": {
            "backoffLimit": settings.download_backoff_limit,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": True,
                    "containers": [container],
                    "enableServiceLinks": False,
                    "restartPolicy": "Never",
                    "securityContext": common.pod_security_context(settings),
                    "serviceAccountName": identity_name(server),
                    "volumes": [
                        {"name": common.CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
