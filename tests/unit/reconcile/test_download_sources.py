"""The download Job for S3 and URL sources: the downloader's flags, credentials only as env from
the Secret, a Job name that follows the source, and the Deployment serving the same cache path."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import llmserver_api
import pytest
from llmserver_api import paths
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import common, deployment, download, plan

pytestmark = pytest.mark.timeout(60)

SHA = "ab" * 32
S3_KEY = {"bucket": "models", "key": "gguf/qwen.gguf", "endpoint": "http://minio.storage:9000", "region": "eu-west-1",
          "credentialsSecretRef": {"name": "s3-creds"}}  # fmt: skip


def server(source: dict[str, Any]) -> llmserver_api.LLMServer:
    spec = {"model": "tiny", "backend": "llama-cpp", "source": source}
    return llmserver_api.LLMServer.model_validate({"metadata": {"name": "tiny", "namespace": "team"}, "spec": spec})


@pytest.fixture
def settings() -> settings_mod.Settings:
    return settings_mod.Settings(runtime_images={"cpu": {"image": "registry.example/runtime:1", "engines": ["llama-cpp"]}})


def job_container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def test_s3_key_job_passes_the_uri_and_maps_the_secret_to_env(settings: settings_mod.Settings) -> None:
    children = plan.download_children(server({"s3": S3_KEY}), settings)
    assert children is not None
    main = job_container(children.job)
    assert main["args"] == ["download", "--s3", "s3://models/gguf/qwen.gguf", "--s3-endpoint", "http://minio.storage:9000",
                            "--s3-region", "eu-west-1", "--cache-dir", "/models", "--report-to", "team/tiny"]  # fmt: skip
    secrets = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in main["env"] if "valueFrom" in item}
    assert secrets == {
        "AWS_ACCESS_KEY_ID": {"key": "AWS_ACCESS_KEY_ID", "name": "s3-creds", "optional": False},
        "AWS_SECRET_ACCESS_KEY": {"key": "AWS_SECRET_ACCESS_KEY", "name": "s3-creds", "optional": False},
        "AWS_SESSION_TOKEN": {"key": "AWS_SESSION_TOKEN", "name": "s3-creds", "optional": True},
    }
    assert "s3-creds" not in " ".join(main["args"])
    for obj in children.in_apply_order():
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_s3_prefix_ends_with_a_slash_and_needs_no_secret(settings: settings_mod.Settings) -> None:
    job = download.build_download_job(server({"s3": {"bucket": "models", "prefix": "hf/qwen"}}), settings)
    main = job_container(job)
    assert main["args"][:3] == ["download", "--s3", "s3://models/hf/qwen/"]
    assert "--s3-endpoint" not in main["args"]
    assert not [item for item in main["env"] if "valueFrom" in item]


def test_url_job_passes_url_and_checksum(settings: settings_mod.Settings) -> None:
    source = {"url": {"url": "https://mirror.internal/models/qwen.gguf", "sha256": SHA.upper()}}
    main = job_container(download.build_download_job(server(source), settings))
    assert main["args"] == ["download", "--url", "https://mirror.internal/models/qwen.gguf", "--sha256", SHA,
                            "--cache-dir", "/models", "--report-to", "team/tiny"]  # fmt: skip


def test_job_name_follows_the_source_not_the_credentials() -> None:
    base = download.job_name(server({"s3": S3_KEY}))
    assert base == download.job_name(server({"s3": {**S3_KEY, "credentialsSecretRef": {"name": "other"}}}))
    assert base != download.job_name(server({"s3": {**S3_KEY, "key": "gguf/other.gguf"}}))
    one = download.job_name(server({"url": {"url": "https://m.internal/a.gguf", "sha256": SHA}}))
    assert one != download.job_name(server({"url": {"url": "https://m.internal/a.gguf", "sha256": "cd" * 32}}))


def test_deployment_serves_where_the_downloader_writes(settings: settings_mod.Settings) -> None:
    s3 = server({"s3": S3_KEY})
    assert common.model_path(s3) == "/models/" + paths.s3_path("models", "gguf/qwen.gguf", "http://minio.storage:9000")
    url = server({"url": {"url": "https://mirror.internal/models/qwen.gguf", "sha256": SHA}})
    assert common.model_path(url) == f"/models/url/mirror.internal/{SHA}/qwen.gguf"
    args = job_container(deployment.build_deployment(url, settings))["args"]
    assert common.model_path(url) in args


def _downloaded(source: dict[str, Any], observed: Any) -> dict[str, Any]:
    from llmserver_operator import status

    spec = llmserver_api.LLMServerSpec.model_validate({"model": "tiny", "backend": "llama-cpp", "source": source})
    result = status.compute(spec=spec, generation=1, previous=None, observed=observed, endpoint="http://gw/v1",
                            now="2026-01-01T00:00:00Z")  # fmt: skip
    return next(c for c in result["conditions"] if c["type"] == "Downloaded")


def test_s3_credentials_secret_must_hold_both_keys() -> None:
    from llmserver_operator import status

    missing = _downloaded({"s3": S3_KEY}, status.Observed())
    assert missing["reason"] == "SecretNotFound" and "spec.source.s3.credentialsSecretRef" in missing["message"]
    half = _downloaded({"s3": S3_KEY}, status.Observed(secrets={"s3-creds": frozenset({"AWS_ACCESS_KEY_ID"})}))
    assert "no key 'AWS_SECRET_ACCESS_KEY'" in half["message"]
    both = status.Observed(secrets={"s3-creds": frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})})
    assert _downloaded({"s3": S3_KEY}, both)["reason"] == "DownloadPending"
    done = status.Observed(job={"status": {"succeeded": 1}})
    url = {"url": {"url": "https://m.internal/a.gguf", "sha256": SHA}}
    assert _downloaded(url, done)["message"] == "https://m.internal/a.gguf is in the model cache"
