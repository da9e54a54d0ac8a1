"""CR → operator → pod → real runtime process → OpenAI client, on one machine.

The kubelet simulator's process mode runs the Deployment's container command (the operator's
`llmserver-runtime serve ...` line, unchanged but for port and paths) with llama.cpp on a tiny
GGUF; the pod turns Ready through the runtime's own /ready, and the EndpointSlice the gateway reads
points at it.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import openai
import pytest
from testkit import fake_cluster, models

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("models")
    target = root / "hf" / "acme" / "tiny" / "main"
    target.mkdir(parents=True)
    os.symlink(models.tiny_model_path("gguf"), target / "tiny.gguf")
    return root


@pytest.fixture
def cluster(models_dir: pathlib.Path) -> Iterator[fake_cluster.FakeCluster]:
    with fake_cluster.FakeCluster(models_dir=str(models_dir), pods="process") as running:
        yield running


def test_the_operators_command_line_serves_openai_requests(cluster: fake_cluster.FakeCluster) -> None:
    assert cluster.kubelet is not None
    cluster.apply_server("tiny", "proc", model="tiny", backend="llama-cpp", llamaCpp={"nCtx": 256},
                         source={"huggingFace": {"repo": "acme/tiny", "file": "tiny.gguf"}})
    status = cluster.wait_phase("tiny", "Ready", "proc", timeout=240)
    assert status["readyReplicas"] == 1
    [endpoint_slice] = cluster.kube.list("discovery.k8s.io/v1", "EndpointSlice", "proc", labels="kubernetes.io/service-name=tiny")
    [endpoint] = endpoint_slice["endpoints"]
    assert endpoint["addresses"] == ["127.0.0.1"] and endpoint["conditions"]["ready"] is True
    port = endpoint_slice["ports"][0]["port"]
    assert endpoint_slice["ports"][0]["name"] == "http"

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=60)
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert reply.model == "tiny"
    assert reply.choices[0].message.content is not None
    assert [m.id for m in client.models.list().data] == ["tiny"]

    [process] = cluster.kubelet.processes.values()
    cluster.kube.delete(fake_cluster.LLMS, "LLMServer", "tiny", "proc")
    cluster.kube.wait_for(lambda: not cluster.kubelet.processes, 60)  # type: ignore[union-attr]
    assert process.process.poll() is not None  # the runtime was stopped with its pod
