"""`python -m llmserver_operator` runs the operator with settings from its environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from testkit import emulator

pytestmark = pytest.mark.timeout(120)

LLMS = "serving.llmserver.dev/v1alpha1"


@pytest.fixture
def kube() -> Iterator[emulator.KubeEmulator]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server


def test_module_entrypoint_reconciles_with_env_settings(kube: emulator.KubeEmulator, tmp_path: os.PathLike[str]) -> None:
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig, "LLMSERVER_OPERATOR_NAMESPACES": "watched",
           "LLMSERVER_OPERATOR_GATEWAY_URL": "http://gw.{namespace}.example/v1",
           "LLMSERVER_OPERATOR_DOWNLOAD_IMAGE": "registry.local/operator:7",
           "LLMSERVER_OPERATOR_RUNTIME_IMAGES": '{"cpu": {"image": "registry.local/runtime:7", "engines": ["llama-cpp"]}}'}
    log_path = os.path.join(tmp_path, "operator.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "llmserver_operator"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for namespace in ("watched", "ignored"):
            kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": "p", "namespace": namespace},
                         "spec": {"model": "gpt", "mode": "Proxy", "proxy": {"url": "https://api.example/v1"}}})
        kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": "s", "namespace": "watched"},
                     "spec": {"model": "s", "backend": "llama-cpp", "source": {"huggingFace": {"repo": "a/b"}}}})
        status = kube.wait_for(lambda: (kube.get(LLMS, "LLMServer", "p", "watched") or {}).get("status"), 60)
        assert status["phase"] == "Ready"
        assert status["endpoint"] == "http://gw.watched.example/v1"
        [job] = kube.wait_for(lambda: kube.list("batch/v1", "Job", "watched"), 60)
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/operator:7"
        assert "status" not in kube.get(LLMS, "LLMServer", "p", "ignored")  # not a watched namespace
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    with open(log_path) as log:
        assert code == 0, log.read()[-3000:]
