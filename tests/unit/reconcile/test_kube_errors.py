"""kube.py against servers that do not answer, refuse, or throttle: every failure is an ApiError
(TransportError without an answer) within the request timeout, never a hang or a foreign exception."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import kubernetes.client
import pytest
from llmserver_operator import kube as kube_mod
from testkit import emulator

pytestmark = pytest.mark.timeout(60)


def _client(host: str, timeout: tuple[float, float] = (0.5, 0.5)) -> kube_mod.Kube:
    config = kubernetes.client.Configuration()
    config.host = host
    config.retries = 0
    return kube_mod.Kube(config, timeout=timeout)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers (a hung API server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def test_a_hung_api_server_times_out(silent_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(kube_mod.TransportError) as caught:
        _client(silent_server).get("Service", "ns", "x")
    assert time.monotonic() - started < 5
    assert caught.value.status == 0 and isinstance(caught.value, kube_mod.ApiError)


def test_a_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(kube_mod.TransportError):
        _client(f"http://127.0.0.1:{port}").list("Pod", "ns")


def test_throttling_keeps_retry_after_and_refusals_keep_the_message() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "ns"},
               "spec": {"ports": [{"port": 80}]}}
    with emulator.KubeEmulator() as kube:
        client = kube_mod.Kube(kube_mod.configuration(kube.kubeconfig, pool_size=2))
        # a POST is never retried by urllib3 (a GET with Retry-After is, after sleeping it)
        kube.faults.add(verb="create", kind="Service", status=429, retry_after=7, times=1)
        with pytest.raises(kube_mod.ApiError) as throttled:
            client.create(service)
        assert (throttled.value.status, throttled.value.retry_after) == (429, 7.0)
        kube.faults.add(verb="update", kind="Service", status=422, message="spec.ports: Required value")
        created = client.create(service)  # the next one is served
        with pytest.raises(kube_mod.ApiError) as refused:
            client.replace(created)
        assert refused.value.status == 422 and "spec.ports: Required value" in refused.value.message
