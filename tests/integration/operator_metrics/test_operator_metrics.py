"""The real operator's /metrics, scraped over HTTP while it reconciles against the API emulator.

A fake cluster (emulator + kubelet simulator + the real kopf operator with its metrics endpoint on
loopback) runs good and failing LLMServers; the reconcile counters, the API request counters and
the phase gauges read back from /metrics must move as the servers do. API failures are real HTTP
500 answers of the emulator (a fault switched on per namespace and resource), not stubs in the
operator. The entry point (`python -m llmserver_operator`) serves /metrics from its env settings.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp.web
import prometheus_client.parser
import pytest
from testkit import emulator, emulator_http, fake_cluster, ports, prometheus

pytestmark = pytest.mark.timeout(180)

LLMS = fake_cluster.LLMS
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
PHASES = ("Pending", "Downloading", "Starting", "Ready", "Failed", "Unloaded")


def scrape(url: str) -> Samples:
    """name + sorted labels -> value, from one GET of /metrics."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in prometheus_client.parser.text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def reconciles(samples: Samples, result: str) -> float:
    return value(samples, "llmserver_operator_reconciles_total", result=result)


def phases(samples: Samples) -> dict[str, float]:
    """Non-zero phase counts."""
    counts = {phase: value(samples, "llmserver_operator_llmservers", phase=phase) for phase in PHASES}
    return {phase: count for phase, count in counts.items() if count}


def wait_scraped(url: str, check: Callable[[Samples], bool], what: str, timeout: float = 60.0) -> Samples:
    """Scrapes until `check` holds (bounded): the operator records right after it writes status."""
    deadline = time.monotonic() + timeout
    samples = scrape(url)
    while not check(samples):
        if time.monotonic() > deadline:
            raise AssertionError(f"/metrics never showed {what}; phases {phases(samples)}, reconciles "
                                 f"{ {r: reconciles(samples, r) for r in ('success', 'retry', 'conflict', 'error')} }")
        time.sleep(0.2)
        samples = scrape(url)
    return samples


class Faults:
    """Requests the emulator answers with HTTP 500: (method, namespace, resource plural)."""

    def __init__(self) -> None:
        self.active: set[tuple[str, str, str]] = set()

    def matches(self, method: str, path: str) -> bool:
        parts = path.strip("/").split("/")
        if "namespaces" not in parts or len(parts) < parts.index("namespaces") + 3:
            return False
        at = parts.index("namespaces")
        return (method, parts[at + 1], parts[at + 2]) in self.active


@pytest.fixture(scope="module")
def faults() -> Iterator[Faults]:
    found = Faults()
    original = emulator_http.Api.handle

    async def handle(self: emulator_http.Api, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        if found.matches(request.method, request.path):
            status = emulator_http.ApiError(500, "InternalError", "injected by the test").status()
            return aiohttp.web.json_response(status, status=500)
        return await original(self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emulator_http.Api, "handle", handle)
        yield found


@pytest.fixture(scope="module")
def cluster(faults: Faults) -> Iterator[fake_cluster.FakeCluster]:
    del faults  # installed before the emulator serves
    with fake_cluster.FakeCluster(metrics_port=ports.free_port(), metrics_address="127.0.0.1") as running:
        yield running


@pytest.fixture
def url(cluster: fake_cluster.FakeCluster) -> str:
    assert cluster.operator is not None
    return f"http://127.0.0.1:{cluster.operator.settings.metrics_port}/metrics"


def gguf(repo: str) -> dict[str, Any]:
    return {"model": "tiny", "backend": "llama-cpp", "source": {"huggingFace": {"repo": repo, "file": "m.gguf"}}}


def delete_all(cluster: fake_cluster.FakeCluster, url: str, *where: tuple[str, str]) -> None:
    for namespace, name in where:
        cluster.kube.delete(LLMS, "LLMServer", name, namespace)
    wait_scraped(url, lambda s: phases(s) == {} and value(s, "llmserver_operator_download_jobs_failed") == 0,
                 "no LLMServer left after the deletes")


def test_good_and_failing_servers(cluster: fake_cluster.FakeCluster, url: str) -> None:
    assert cluster.kubelet is not None
    before = scrape(url)
    assert phases(before) == {} and reconciles(before, "error") == 0
    cluster.kubelet.set_job_outcome("fail", "RepositoryNotFoundError: 404 acme/missing", exit_code=3, name_prefix="gone-")
    cluster.apply_server("good", "metrics-a", **gguf("acme/tiny"))
    cluster.apply_server("gone", "metrics-a", **gguf("acme/missing"))
    cluster.apply_server("proxy", "metrics-b", model="gpt", mode="Proxy", proxy={"url": "https://api.example/v1"})
    for namespace, name, phase in (("metrics-a", "good", "Ready"), ("metrics-a", "gone", "Failed"),
                                   ("metrics-b", "proxy", "Ready")):
        cluster.wait_phase(name, phase, namespace)
    after = wait_scraped(url, lambda s: phases(s) == {"Ready": 2, "Failed": 1}, "2 Ready and 1 Failed")
    assert value(after, "llmserver_operator_download_jobs_failed") == 1
    # Every pass ended well: a failed download is a status, not a reconcile error.
    assert reconciles(after, "success") >= reconciles(before, "success") + 3
    assert reconciles(after, "error") == 0
    count = "llmserver_operator_kube_requests_total"
    assert value(after, count, verb="create", resource="jobs", code="201") >= 2
    assert value(after, count, verb="patch", resource="llmservers/status", code="200") >= 3
    assert value(after, count, verb="get", resource="llmservers", code="200") == 0  # read from kopf's watch
    assert value(after, "llmserver_operator_kube_request_duration_seconds_count", verb="create", resource="jobs") >= 2
    assert value(after, "llmserver_operator_reconcile_duration_seconds_count") == sum(
        reconciles(after, result) for result in ("success", "retry", "conflict", "error"))
    delete_all(cluster, url, ("metrics-a", "good"), ("metrics-a", "gone"), ("metrics-b", "proxy"))


def test_api_errors_and_conflicts(cluster: fake_cluster.FakeCluster, url: str, faults: Faults) -> None:
    before = scrape(url)
    faults.active.add(("POST", "metrics-err", "services"))  # the API server fails every Service create there
    cluster.apply_server("flaky", "metrics-err", **gguf("acme/tiny"))
    failing = wait_scraped(url, lambda s: reconciles(s, "error") > reconciles(before, "error"), "a reconcile error")
    assert value(failing, "llmserver_operator_kube_requests_total", verb="create", resource="services", code="500") >= 1
    assert "Ready" not in phases(failing)
    faults.active.clear()  # the API recovers: kopf's retry converges the server
    cluster.wait_phase("flaky", "Ready", "metrics-err", timeout=60)
    recovered = wait_scraped(url, lambda s: phases(s) == {"Ready": 1}, "the recovered server Ready")
    assert value(recovered, "llmserver_operator_kube_requests_total", verb="create", resource="services", code="201") >= 1

    # A Service of that name that is not ours: the reconcile refuses to take it over (a conflict).
    cluster.kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "taken", "namespace": "metrics-err"},
                         "spec": {"ports": [{"port": 80}]}})
    cluster.apply_server("taken", "metrics-err", **gguf("acme/tiny"))
    wait_scraped(url, lambda s: reconciles(s, "conflict") > reconciles(before, "conflict"), "a reconcile conflict")
    cluster.kube.delete("v1", "Service", "taken", "metrics-err")
    cluster.wait_phase("taken", "Ready", "metrics-err", timeout=60)
    delete_all(cluster, url, ("metrics-err", "flaky"), ("metrics-err", "taken"))


def test_waiting_for_a_secret_counts_as_retry(cluster: fake_cluster.FakeCluster, url: str) -> None:
    before = scrape(url)
    cluster.apply_server("keyed", "metrics-wait", model="gpt", mode="Proxy",
                         proxy={"url": "https://api.example/v1", "apiKeySecretRef": {"name": "provider", "key": "apiKey"}})
    cluster.wait_phase("keyed", "Pending", "metrics-wait")
    waiting = wait_scraped(url, lambda s: reconciles(s, "retry") >= reconciles(before, "retry") + 2,
                           "the operator re-checking the missing Secret")
    assert phases(waiting) == {"Pending": 1}
    cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "provider", "namespace": "metrics-wait", "labels": {"serving.llmserver.dev/proxy-key": "true"}},
        "data": {"apiKey": "c2stdGVzdA=="}})
    cluster.wait_phase("keyed", "Ready", "metrics-wait")
    wait_scraped(url, lambda s: phases(s) == {"Ready": 1}, "Ready once the Secret exists")
    delete_all(cluster, url, ("metrics-wait", "keyed"))


def test_exposition_of_the_running_operator_passes_promtool(cluster: fake_cluster.FakeCluster, url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    assert 'llmserver_operator_kube_requests_total{code="201",resource="jobs",verb="create"}' in text
    result = subprocess.run([prometheus.binary("promtool"), "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_endpoint_stops_and_restarts_with_the_operator(cluster: fake_cluster.FakeCluster, url: str) -> None:
    cluster.apply_server("kept", "metrics-restart", model="gpt", mode="Proxy", proxy={"url": "https://api.example/v1"})
    cluster.wait_phase("kept", "Ready", "metrics-restart")
    wait_scraped(url, lambda s: phases(s) == {"Ready": 1}, "the server Ready")
    cluster.stop_operator()
    with pytest.raises(urllib.error.URLError):
        scrape(url)
    cluster.start_operator()  # same port; a new registry that the resume handlers fill again
    samples = wait_scraped(url, lambda s: phases(s) == {"Ready": 1}, "the server again after the restart")
    assert reconciles(samples, "error") == 0
    delete_all(cluster, url, ("metrics-restart", "kept"))


def test_entrypoint_serves_metrics_from_env(tmp_path: pathlib.Path) -> None:
    port = ports.free_port()
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        env = {**os.environ, "KUBECONFIG": kube.kubeconfig, "LLMSERVER_OPERATOR_METRICS_PORT": str(port),
               "LLMSERVER_OPERATOR_METRICS_ADDRESS": "127.0.0.1", "LLMSERVER_OPERATOR_APPLE_ENABLED": "false"}
        log_path = tmp_path / "operator.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "llmserver_operator"], env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
        try:
            kube.create({"apiVersion": LLMS, "kind": "LLMServer", "metadata": {"name": "p", "namespace": "ml"},
                         "spec": {"model": "gpt", "mode": "Proxy", "proxy": {"url": "https://api.example/v1"}}})
            url = f"http://127.0.0.1:{port}/metrics"
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log_path.read_text()[-3000:]
                try:
                    samples = scrape(url)
                    if phases(samples) == {"Ready": 1}:
                        break
                except urllib.error.URLError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
            assert reconciles(samples, "success") >= 1
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
        assert code == 0, log_path.read_text()[-3000:]
        with pytest.raises(urllib.error.URLError):
            scrape(url)


def test_a_taken_metrics_port_stops_the_operator_with_a_clear_error() -> None:
    """A misconfigured port fails the start visibly (exit 1, naming the endpoint) instead of retrying forever."""
    with socket.socket() as taken, emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "KUBECONFIG": kube.kubeconfig, "LLMSERVER_OPERATOR_METRICS_PORT": str(port),
               "LLMSERVER_OPERATOR_METRICS_ADDRESS": "127.0.0.1", "LLMSERVER_OPERATOR_APPLE_ENABLED": "false"}
        result = subprocess.run([sys.executable, "-m", "llmserver_operator"], env=env, capture_output=True, text=True,
                                timeout=90, check=False)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert f"metrics endpoint 127.0.0.1:{port}: " in output and "Address already in use" in output, output[-3000:]
