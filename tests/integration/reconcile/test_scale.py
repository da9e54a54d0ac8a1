"""The real operator scaled through the LLMServer's /scale subresource (kubectl scale, an HPA,
KEDA): the Deployment follows spec.replicas, status.replicas reports the pods that run and
status.selector picks exactly those pods; the CLI's unload/load keep working on a scaled server."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from llmserver_cli import cli
from llmserver_cli.commands import scaling
from testkit import emulator_client, fake_cluster

pytestmark = pytest.mark.timeout(120)

Cluster = fake_cluster.FakeCluster
LLMS = fake_cluster.LLMS


def gguf(name: str) -> dict[str, Any]:
    return {"model": name, "backend": "llama-cpp", "source": {"huggingFace": {"repo": "acme/tiny-gguf", "file": "m.gguf"}}}


def live_pods(cluster: Cluster, ns: str, selector: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cluster.kube.list("v1", "Pod", ns, labels=selector)
                  if not p["metadata"].get("deletionTimestamp"))


def settled(cluster: Cluster, ns: str, name: str, replicas: int) -> dict[str, Any] | None:
    """The status once the Deployment wants `replicas` and that many pods run and are ready."""
    deployment = cluster.kube.get("apps/v1", "Deployment", name, ns) or {}
    status = cluster.status(name, ns)
    if (deployment.get("spec") or {}).get("replicas") != replicas:
        return None
    return status if status.get("replicas") == replicas and status.get("readyReplicas") == replicas else None


def test_scale_subresource_drives_the_deployment_and_reports_observed_pods(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("scaled", ns, **gguf("scaled"))
    status = cluster.wait_phase("scaled", "Ready", ns)
    selector = status["selector"]
    assert selector == ("app.kubernetes.io/component=runtime,app.kubernetes.io/instance=scaled,"
                        "serving.llmserver.dev/server=scaled")
    deployment = cluster.kube.get("apps/v1", "Deployment", "scaled", ns)
    assert selector == ",".join(f"{k}={v}" for k, v in sorted(deployment["spec"]["selector"]["matchLabels"].items()))
    assert status["replicas"] == 1 and len(live_pods(cluster, ns, selector)) == 1

    since = len(cluster.kube.requests)
    cluster.kube.kubectl("scale", "llms/scaled", "-n", ns, "--replicas=3")
    assert cluster.kube.calls(since, agent="kubectl")[("patch", "LLMServer/scale")] == 1
    status = cluster.kube.wait_for(lambda: settled(cluster, ns, "scaled", 3), 30, "three replicas")
    assert len(live_pods(cluster, ns, status["selector"])) == 3

    path = f"/apis/serving.llmserver.dev/v1alpha1/namespaces/{ns}/llmservers/scaled/scale"
    scale = emulator_client.call(cluster.kube, "GET", path).body  # what an HPA reads
    assert scale["spec"] == {"replicas": 3} and scale["status"] == {"replicas": 3, "selector": selector}
    put = emulator_client.call(cluster.kube, "PUT", path, {**scale, "spec": {"replicas": 2}})  # and how it writes
    assert put.code == 200
    status = cluster.kube.wait_for(lambda: settled(cluster, ns, "scaled", 2), 30, "two replicas")
    cluster.kube.wait_for(lambda: len(live_pods(cluster, ns, selector)) == 2, 30)

    patched = emulator_client.call(cluster.kube, "PATCH", path, {"spec": {"replicas": 0}}, "application/merge-patch+json")
    assert patched.code == 200
    cluster.wait_phase("scaled", "Unloaded", ns)
    cluster.kube.wait_for(lambda: cluster.status("scaled", ns).get("replicas") == 0, 30, "no pods observed")
    assert live_pods(cluster, ns, selector) == []


def test_unload_and_load_model_restore_what_kubectl_scale_set(cluster: Cluster, ns: str) -> None:
    cluster.apply_server("cli", ns, **gguf("cli"))
    cluster.wait_phase("cli", "Ready", ns)
    cluster.kube.kubectl("scale", "llms/cli", "-n", ns, "--replicas=2")
    cluster.kube.wait_for(lambda: settled(cluster, ns, "cli", 2), 30, "two replicas")

    def run(*args: str) -> None:
        result = CliRunner().invoke(cli.main, [*args, "cli", "-n", ns, "--kubeconfig", cluster.kube.kubeconfig],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output

    run("unload-model")
    server = cluster.server("cli", ns)
    assert server is not None and server["metadata"]["annotations"][scaling.ANNOTATION] == "2"
    cluster.wait_phase("cli", "Unloaded", ns)
    cluster.kube.wait_for(lambda: cluster.status("cli", ns).get("replicas") == 0, 30, "unloaded: no pods observed")
    run("load-model")
    cluster.kube.wait_for(lambda: settled(cluster, ns, "cli", 2), 30, "loaded again with two replicas")
    assert cluster.wait_phase("cli", "Ready", ns)["readyReplicas"] == 2
