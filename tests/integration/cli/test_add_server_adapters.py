"""add-server --adapter and the s3/url --model-path forms against the stateful API emulator (real
`kubernetes` client, real kubeconfig): what lands in the cluster, and how an update replaces it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from llmserver_cli import cli
from testkit import emulator

API = "serving.llmserver.dev/v1alpha1"
SHA = "ef" * 32
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kube() -> Iterator[emulator.KubeEmulator]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server


def run(kube: emulator.KubeEmulator, *args: str) -> Result:
    return CliRunner().invoke(cli.main, [*args, "--kubeconfig", kube.kubeconfig], catch_exceptions=False)


def test_adapters_are_written_then_replaced_then_removed(kube: emulator.KubeEmulator) -> None:
    created = run(kube, "add-server", "--name", "base", "--model", "base", "--backend", "vllm",
                  "--model-path", "s3://models/base/", "--endpoint", "http://minio.storage:9000", "--s3-secret", "s3-keys",
                  "--adapter", "sql=Org/sql-lora", "--adapter", f"chat=https://mirror.example/chat.safetensors#sha256={SHA}",
                  "-n", "ml")  # fmt: skip
    assert created.exit_code == 0, created.output
    spec = kube.get(API, "LLMServer", "base", "ml")["spec"]  # type: ignore[index]
    assert spec["source"] == {"s3": {"bucket": "models", "prefix": "base", "endpoint": "http://minio.storage:9000",
                                     "credentialsSecretRef": {"name": "s3-keys"}}}  # fmt: skip
    assert [a["name"] for a in spec["adapters"]] == ["sql", "chat"]
    assert spec["adapters"][0]["source"] == {"huggingFace": {"repo": "Org/sql-lora", "revision": "main"}}
    assert spec["adapters"][1]["source"] == {"url": {"url": "https://mirror.example/chat.safetensors", "sha256": SHA}}

    replaced = run(kube, "add-server", "--name", "base", "--model", "base", "--backend", "vllm",
                   "--model-path", "s3://models/base/", "--endpoint", "http://minio.storage:9000", "--s3-secret", "s3-keys",
                   "--adapter", "sql=pvc:loras/sql", "-n", "ml")  # fmt: skip
    assert replaced.exit_code == 0 and "updated" in replaced.output
    spec = kube.get(API, "LLMServer", "base", "ml")["spec"]  # type: ignore[index]
    assert spec["adapters"] == [{"name": "sql", "source": {"pvc": {"claimName": "loras", "path": "sql"}}}]

    without = run(kube, "add-server", "--name", "base", "--model", "base", "--backend", "vllm",
                  "--model-path", "s3://models/base/", "--endpoint", "http://minio.storage:9000", "--s3-secret", "s3-keys",
                  "-n", "ml")  # fmt: skip
    assert without.exit_code == 0 and "updated" in without.output
    assert not kube.get(API, "LLMServer", "base", "ml")["spec"].get("adapters")  # type: ignore[index]


def test_a_bad_adapter_never_reaches_the_cluster(kube: emulator.KubeEmulator) -> None:
    before = len(kube.writes())
    for bad in ("sql", "sql=https://mirror.example/x.gguf", "-x=Org/lora"):
        result = CliRunner().invoke(cli.main, ["add-server", "--name", "bad", "--model", "m", "--model-path", "Org/Base",
                                               "--adapter", bad, "--kubeconfig", kube.kubeconfig])  # fmt: skip
        assert result.exit_code == 2 and "--adapter" in result.output, result.output
    proxy = CliRunner().invoke(cli.main, ["add-server", "--name", "bad", "--model", "m", "--proxy-url", "https://p.example/v1",
                                          "--adapter", "sql=Org/lora", "--kubeconfig", kube.kubeconfig])  # fmt: skip
    assert proxy.exit_code == 2 and "--adapter cannot be used with --mode proxy" in proxy.output
    assert len(kube.writes()) == before and kube.get(API, "LLMServer", "bad") is None
