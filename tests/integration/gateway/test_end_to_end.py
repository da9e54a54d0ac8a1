"""The whole path on one machine: LLMServer → real operator → pod → real runtime → gateway → SDK.

An LLMServer is applied to the API emulator; the real kopf operator reconciles it; the kubelet
simulator runs the Deployment's container command (llama.cpp on a tiny GGUF) as a local process
and publishes its EndpointSlice; `llmserver-gateway --kubernetes` discovers it, and the
official openai SDK gets completions through the gateway. Deleting the LLMServer removes the model.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator

import openai
import pytest

from testkit import fake_cluster, models

pytestmark = pytest.mark.timeout(420)

NS = "e2e"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("models")
    target = root / "hf" / "acme" / "tiny" / "main"
    target.mkdir(parents=True)
    os.symlink(models.tiny_model_path("gguf"), target / "tiny.gguf")
    return root


@pytest.fixture(scope="module")
def cluster(models_dir: pathlib.Path) -> Iterator[fake_cluster.FakeCluster]:
    with fake_cluster.FakeCluster(models_dir=str(models_dir), pods="process") as running:
        yield running


@pytest.fixture(scope="module")
def gateway(cluster: fake_cluster.FakeCluster, run_gateway):  # after `cluster`: stopped before it
    return run_gateway("--kubernetes", "--namespace", NS, ready="/ready",
                       env={"KUBECONFIG": cluster.kube.kubeconfig, "LLMSERVER_GATEWAY_RESYNC_SECONDS": "3"})


def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except openai.APIStatusError as exc:
            if exc.status_code not in (404, 503):  # not discovered yet / not ready yet
                raise
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_llmserver_to_openai_completion_through_the_gateway(cluster: fake_cluster.FakeCluster, gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    cluster.apply_server("tiny", NS, model="tiny-e2e", backend="llama-cpp", llamaCpp={"nCtx": 256},
                         source={"huggingFace": {"repo": "acme/tiny", "file": "tiny.gguf"}})
    cluster.wait_phase("tiny", "Ready", NS, timeout=300)

    def complete():
        reply = client.chat.completions.create(
            model="tiny-e2e", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        return reply

    reply = _until(complete, 60, "the gateway to route tiny-e2e")
    assert reply.model == "tiny-e2e"
    assert reply.choices[0].message.content is not None and reply.usage.completion_tokens >= 1
    assert [m.id for m in client.models.list()] == ["tiny-e2e"]
    streamed = client.completions.create(model="tiny-e2e", prompt="Once", max_tokens=4, stream=True)
    assert [chunk.model for chunk in streamed]

    cluster.kube.delete(fake_cluster.LLMS, "LLMServer", "tiny", NS)

    def gone() -> bool:
        try:
            complete()
        except openai.NotFoundError:
            return True
        return False

    _until(gone, 60, "404 after the LLMServer is deleted")
    assert client.models.list().data == []
