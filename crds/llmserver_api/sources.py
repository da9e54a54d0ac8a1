"""Where model (and adapter) files come from: the Hugging Face Hub, a PVC, S3 or a plain URL."""

from __future__ import annotations

import pydantic

from llmserver_api import common, paths, rules

_enforce = rules.enforce


class HuggingFaceSource(common.ApiModel):
    """A Hugging Face Hub repository, downloaded into the model cache by a Job."""

    repo: str = pydantic.Field(
        ...,
        pattern=paths.REPO_ID,
        max_length=200,
        description="Repository id, owner/name (e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF); the name may not start "
        "with '.' or '-'.",
    )
    file: str | None = pydantic.Field(
        None,
        min_length=1,
        max_length=500,
        pattern=paths.RELATIVE_PATH,
        description="Download only this file of the repository (e.g. one GGUF quantisation): a relative path "
        "whose segments do not start with '.' (no '..', no absolute path).",
    )
    revision: str = pydantic.Field(
        "main",
        min_length=1,
        max_length=200,
        pattern=paths.RELATIVE_PATH,
        description="Branch, tag or commit to download (e.g. main, v1.0, refs/pr/1); segments may not start "
        "with '.'.",
    )
    token_secret_ref: common.SecretKeyRef | None = pydantic.Field(
        None, description="Secret key holding a Hugging Face token, for gated or private repositories."
    )


class PvcSource(common.ApiModel):
    """A model already present on an existing PersistentVolumeClaim: nothing is downloaded."""

    claim_name: str = pydantic.Field(
        ..., min_length=1, max_length=253, description="Name of the PersistentVolumeClaim holding the model."
    )
    path: str = pydantic.Field(
        "",
        max_length=1000,
        pattern=paths.OPTIONAL_RELATIVE_PATH,
        description="Relative path of the model file or directory inside the claim; segments may not start with '.' "
        "(no '..', no absolute path).",
    )


class SecretRef(common.ApiModel):
    """A Secret of the same namespace, read by fixed key names."""

    name: str = pydantic.Field(
        ..., min_length=1, max_length=253, description="Name of the Secret in the LLMServer's namespace."
    )


class S3Source(common.ApiModel):
    """An object (key) or every object under a prefix in an S3 bucket (AWS or an S3-compatible store),
    downloaded into the model cache by a Job, resumed and checksum-verified like a Hub download."""

    bucket: str = pydantic.Field(..., pattern=paths.S3_BUCKET, description="Bucket name.")
    key: str | None = pydantic.Field(
        None, min_length=1, max_length=1000, pattern=paths.RELATIVE_PATH,
        description="Download this one object (e.g. models/qwen.gguf); segments may not start with '.'. "
        "Exactly one of key and prefix.",
    )  # fmt: skip
    prefix: str | None = pydantic.Field(
        None, min_length=1, max_length=1000, pattern=paths.RELATIVE_PATH,
        description="Download every object under this folder (e.g. models/qwen2.5-0.5b, no trailing '/'); "
        "segments may not start with '.'. Exactly one of key and prefix.",
    )  # fmt: skip
    endpoint: str | None = pydantic.Field(
        None, max_length=500, pattern=r"^https?://[^\s/?#@]+/?$",
        description="Endpoint URL of an S3-compatible store (e.g. http://minio.storage:9000); unset: AWS S3.",
    )  # fmt: skip
    region: str | None = pydantic.Field(
        None, max_length=50, pattern=r"^[a-z0-9-]+$", description="Region of the bucket (e.g. eu-west-1)."
    )
    credentials_secret_ref: SecretRef | None = pydantic.Field(
        None,
        description="Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (optionally "
        "AWS_SESSION_TOKEN), given to the download Job as env; unset: the pod's own identity or a public bucket.",
    )

    @pydantic.model_validator(mode="after")
    def _key_or_prefix(self) -> S3Source:
        _enforce(rules.S3_RULES, self.to_wire())
        return self

    @property
    def path(self) -> str:
        """The key, or the prefix."""
        return self.key or self.prefix or ""


class UrlSource(common.ApiModel):
    """One file (e.g. a GGUF on an internal mirror) fetched over http(s) and verified by its SHA-256."""

    url: str = pydantic.Field(
        ..., max_length=2000, pattern=paths.HTTP_URL,
        description="http(s) URL of the file; no credentials in it (the URL is in the Job's arguments).",
    )  # fmt: skip
    sha256: str = pydantic.Field(
        ..., pattern=paths.SHA256_HEX, description="SHA-256 of the file, 64 hex digits: a mismatch fails the download."
    )


class Source(common.ApiModel):
    """Where the model's files come from. Exactly one of huggingFace, pvc, s3 and url."""

    hugging_face: HuggingFaceSource | None = pydantic.Field(None, description="Download from the Hugging Face Hub.")
    pvc: PvcSource | None = pydantic.Field(None, description="Use files already on a PersistentVolumeClaim.")
    s3: S3Source | None = pydantic.Field(None, description="Download from an S3 bucket (or S3-compatible store).")
    url: UrlSource | None = pydantic.Field(None, description="Download one file over http(s), checked by SHA-256.")

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Source:
        _enforce(rules.SOURCE_RULES, self.to_wire())
        return self


ADAPTER_NAME = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"


class Adapter(common.ApiModel):
    """A LoRA adapter on top of the base model, served as the model `<spec.model>:<name>`."""

    name: str = pydantic.Field(
        ..., max_length=63, pattern=ADAPTER_NAME,
        description="Adapter name: letters, digits, '.', '_' and '-' (at most 63); clients call "
        "`<spec.model>:<name>`.",
    )  # fmt: skip
    source: Source = pydantic.Field(..., description="Where the adapter's files come from (as spec.source).")


class DownloadProgress(common.ApiModel):
    """Progress of a download (the model or one adapter), reported by the download Job."""

    bytes_done: int = pydantic.Field(0, ge=0, description="Bytes present in the cache.")
    bytes_total: int | None = pydantic.Field(None, ge=0, description="Bytes of the whole download, when known.")
    files_done: int = pydantic.Field(0, ge=0, description="Files complete in the cache.")
    files_total: int | None = pydantic.Field(None, ge=0, description="Files to download, when known.")
    message: str = pydantic.Field("", description="What the downloader is doing now.")


class AdapterStatus(common.ApiModel):
    """One adapter's state: downloaded, and loaded on how many ready replicas."""

    name: str = pydantic.Field(..., description="The adapter (spec.adapters[].name).")
    phase: str = pydantic.Field(
        "Pending", description="Pending, Downloading, Ready (served by at least one replica) or Failed."
    )
    download: DownloadProgress | None = pydantic.Field(None, description="Download progress of the adapter.")
    ready_replicas: int = pydantic.Field(0, ge=0, description="Ready replicas serving the adapter.")
    message: str = pydantic.Field("", description="Why it is in this phase.")
