"""Injected faults: errors, throttling, slowness and dropped watches, switched on and off by tests."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from testkit import emulator
from testkit.emulator_client import call, configmap

pytestmark = pytest.mark.timeout(60)


def test_errors_hit_only_the_matching_requests_and_only_n_times(kube: emulator.KubeEmulator) -> None:
    kube.create(configmap("f", namespace="f1"))
    fault = kube.faults.add(verb="get", kind="ConfigMap", name="f", status=500, times=2)
    assert call(kube, "GET", "/api/v1/namespaces/f1/configmaps").code == 200  # list: another verb
    assert [call(kube, "GET", "/api/v1/namespaces/f1/configmaps/f").code for _ in range(3)] == [500, 500, 200]
    assert fault.hits == 2
    kube.faults.clear()


def test_throttling_answers_429_with_retry_after(kube: emulator.KubeEmulator) -> None:
    fault = kube.faults.add(verb="create", kind="configmaps", status=429, retry_after=3)
    answer = call(kube, "POST", "/api/v1/namespaces/f2/configmaps", configmap("t"))
    assert (answer.code, answer.body["reason"], answer.headers["Retry-After"]) == (429, "TooManyRequests", "3")
    assert kube.get("v1", "ConfigMap", "t", "f2") is None  # nothing was written
    kube.faults.remove(fault)
    assert call(kube, "POST", "/api/v1/namespaces/f2/configmaps", configmap("t")).code == 201


def test_slow_responses_are_served_late(kube: emulator.KubeEmulator) -> None:
    kube.faults.add(verb="list", kind="ConfigMap", namespace="f3", delay=0.4, times=1)
    started = time.monotonic()
    assert call(kube, "GET", "/api/v1/namespaces/f3/configmaps").code == 200
    assert time.monotonic() - started >= 0.4


def _read_watch(kube: emulator.KubeEmulator, path: str, events: list[str], ended: threading.Event) -> None:
    with urllib.request.urlopen(kube.url + path, timeout=20) as response:
        for line in response:
            events.append(json.loads(line)["type"])
    ended.set()


def test_watches_are_dropped_on_demand_and_after_a_delay(kube: emulator.KubeEmulator) -> None:
    events: list[str] = []
    ended = threading.Event()
    threading.Thread(target=_read_watch, args=(kube, "/api/v1/namespaces/f4/configmaps?watch=true", events, ended),
                     daemon=True).start()
    kube.wait_for(lambda: kube.calls()[("watch", "ConfigMap")] >= 1, 10)
    time.sleep(0.2)  # the stream is registered after the request is counted
    assert kube.faults.drop_watches(kind="ConfigMap", namespace="f4") == 1
    assert ended.wait(10)
    kube.faults.add(verb="watch", kind="ConfigMap", namespace="f5", drop_after=0.3, times=1)
    events.clear()
    ended.clear()
    threading.Thread(target=_read_watch, args=(kube, "/api/v1/namespaces/f5/configmaps?watch=true", events, ended),
                     daemon=True).start()
    time.sleep(0.1)
    kube.create(configmap("seen", namespace="f5"))
    assert ended.wait(10)
    assert events == ["ADDED"]  # served until dropped
