"""S3 sources (AWS or any S3-compatible store) for the direct downloader, through boto3.

Credentials come the way boto3 finds them: env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the
operator maps the LLMServer's credentialsSecretRef to them), or the pod's own identity. Sizes and
digests come from HeadObject (ChecksumSHA256 when the object has one, else a single-part MD5 ETag);
the body is read with GetObject and a `Range: bytes=N-` header when resuming.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator
from typing import Any

from llmserver_api import paths

from llmserver_runtime.download import checksum, direct, errors

_CHUNK = 1024 * 1024
_FATAL_CODES = {
    "NoSuchBucket": "bucket {bucket} does not exist",
    "NoSuchKey": "object s3://{bucket}/{key} does not exist",
    "404": "object s3://{bucket}/{key} does not exist",
    "NotFound": "object s3://{bucket}/{key} does not exist",
    "AccessDenied": "access denied to s3://{bucket}/{key} (check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    "403": "access denied to s3://{bucket}/{key} (check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    "InvalidAccessKeyId": "the store does not know the access key in AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the store rejected the secret in AWS_SECRET_ACCESS_KEY",
}


def parse_uri(uri: str) -> tuple[str, str, bool]:
    """`s3://bucket/key` -> (bucket, key, False); `s3://bucket/prefix/` -> (bucket, prefix, True)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, rest = uri[len("s3://"):].partition("/")
    if not bucket or not rest.strip("/"):
        raise ValueError(f"{uri!r} must name a bucket and a key (s3://BUCKET/KEY) or a prefix (s3://BUCKET/PREFIX/)")
    return bucket, rest.rstrip("/"), rest.endswith("/")


@dataclasses.dataclass
class S3Source:
    """One key, or every object under a prefix."""

    bucket: str
    path: str  # the key, or the prefix (no trailing '/')
    is_prefix: bool
    cache_dir: pathlib.Path
    endpoint: str | None = None
    region: str | None = None
    _client: Any = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path = self.path.rstrip("/")
        relative = self.cache_dir / paths.s3_path(self.bucket, self.path, self.endpoint)  # validates
        self.served_path = relative
        self.target = relative if self.is_prefix else relative.parent
        self.marker = (relative / direct.MARKER) if self.is_prefix else relative.parent / f".{relative.name}{direct.MARKER}"
        self.label = f"s3://{self.bucket}/{self.path}{'/' if self.is_prefix else ''}"
        self.identity = {"s3": {"bucket": self.bucket, "endpoint": self.endpoint,
                                "key" if not self.is_prefix else "prefix": self.path}}  # fmt: skip

    def client(self) -> Any:
        """A boto3 S3 client; its own retries off (the download loop retries and resumes)."""
        if self._client is None:
            import boto3
            import botocore.config

            config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10,
                                            read_timeout=60)  # fmt: skip
            self._client = boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region, config=config)
        return self._client

    def _head(self, key: str) -> tuple[int, checksum.Digest | None]:
        head = self.client().head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        return int(head["ContentLength"]), checksum.of_s3(head.get("ChecksumSHA256"), head.get("ETag"))

    def resolve(self) -> direct.DirectPlan:
        if not self.is_prefix:
            size, digest = self._head(self.path)
            return direct.DirectPlan((direct.RemoteFile(self.served_path.name, size, digest, self.path),))
        files = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.path + "/"):
            for entry in page.get("Contents") or ():
                name = entry["Key"][len(self.path) + 1:]
                if not name or name.endswith("/") or not paths.is_relative_path(name):
                    continue  # folder markers and hidden names (.gitattributes) are not model files
                size, digest = self._head(entry["Key"])
                files.append(direct.RemoteFile(name, size, digest, entry["Key"]))
        if not files:
            raise errors.DownloadError(f"no objects under {self.label}", transient=False)
        return direct.DirectPlan(tuple(sorted(files, key=lambda f: f.name)))

    def open_from(self, file: direct.RemoteFile, offset: int) -> tuple[int, Iterator[bytes]]:
        extra = {"Range": f"bytes={offset}-"} if offset else {}
        if file.size is not None and offset >= file.size:
            return offset, iter(())
        answer = self.client().get_object(Bucket=self.bucket, Key=file.locator, **extra)
        start = offset if answer.get("ContentRange") or not offset else 0
        return start, answer["Body"].iter_chunks(_CHUNK)

    def classify(self, exc: BaseException) -> errors.DownloadError:
        import botocore.exceptions as boto_errors

        if isinstance(exc, errors.DownloadError):
            return exc
        if isinstance(exc, boto_errors.NoCredentialsError):
            return errors.DownloadError(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(spec.source.s3.credentialsSecretRef)", transient=False)  # fmt: skip
        if isinstance(exc, boto_errors.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _FATAL_CODES:
                return errors.DownloadError(_FATAL_CODES[code].format(bucket=self.bucket, key=self.path), transient=False)
            if status >= 500 or status in (408, 429) or code in ("SlowDown", "Throttling", "RequestTimeout"):
                return errors.DownloadError(f"the store answered {code or status} for {self.label}", transient=True)
            return errors.DownloadError(f"the store refused {self.label}: {code or status}", transient=False)
        transient = (boto_errors.EndpointConnectionError, boto_errors.ConnectionClosedError,
                     boto_errors.ReadTimeoutError, boto_errors.ConnectTimeoutError,
                     boto_errors.IncompleteReadError, boto_errors.ResponseStreamingError,
                     ConnectionError, TimeoutError)  # fmt: skip
        for error in errors.chain(exc):
            if isinstance(error, transient):
                return errors.DownloadError(f"cannot reach the store for {self.label} ({type(error).__name__})",
                                            transient=True)  # fmt: skip
        return errors.unexpected(exc)
