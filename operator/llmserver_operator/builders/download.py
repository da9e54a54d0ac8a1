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


def _hf(server: llmserver_api.LLMServer) -> llmserver_api.llmserver.HuggingFaceSource:
    source = server.spec.source
    if source is None or source.hugging_face is None:
        raise ValueError("spec.source.huggingFace is required for a download")
    return source.hugging_face


def needs_download(server: llmserver_api.LLMServer) -> bool:
    """Only a Hugging Face source is downloaded; a PVC source is used in place."""
    source = server.spec.source
    return source is not None and source.hugging_face is not None


def source_hash(server: llmserver_api.LLMServer) -> str:
    """8 hex chars identifying what is downloaded (repo, file, revision; not the token)."""
    hf = _hf(server)
    return common.digest({"file": hf.file, "repo": hf.repo, "revision": hf.revision}, length=8)


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


def download_args(server: llmserver_api.LLMServer) -> list[str]:
    """Arguments after `llmserver-runtime`; the token never appears here (it comes through env)."""
    hf = _hf(server)
    args = ["download", "--repo", hf.repo]
    if hf.file:
        args += ["--file", hf.file]
    args += [
        "--revision", hf.revision,
        "--cache-dir", paths.CACHE_MOUNT,
        "--report-to", f"{common.namespace_of(server)}/{common.name_of(server)}",
    ]
    return args


def build_download_job(server: llmserver_api.LLMServer, settings: settings_mod.Settings) -> Manifest:
    """Job `N-download-<hash8>`: retries with the Job's exponential backoff, resumes in the cache."""
    hf = _hf(server)
    variables: dict[str, str | Manifest] = {
        "HF_HOME": "/tmp/huggingface",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HOME": "/tmp",
    }
    if hf.token_secret_ref is not None:
        variables["HF_TOKEN"] = {
            "secretKeyRef": {"key": hf.token_secret_ref.key, "name": hf.token_secret_ref.name, "optional": False}
        }
    claim = common.cache_claim_name(server, settings)
    labels = common.labels(server, "download")
    container: Manifest = {
        "name": "download",
        "image": settings.download_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["llmserver-runtime"],
        "args": download_args(server),
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
        "metadata": common.metadata(server, job_name(server), "download"),
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
