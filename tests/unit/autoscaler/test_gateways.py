"""Finding the gateway replicas in EndpointSlices and reading their /internal/load answers (pure parts)."""

from __future__ import annotations

from typing import Any

import pytest
from llmserver_operator.autoscaler import gateways


def slice_(ports: list[dict[str, Any]], *endpoints: tuple[str, bool | None]) -> dict[str, Any]:
    return {"ports": ports, "endpoints": [
        {"addresses": [address], **({} if ready is None else {"conditions": {"ready": ready}})}
        for address, ready in endpoints]}


def test_only_ready_endpoints_on_the_http_port_are_asked() -> None:
    slices = [
        slice_([{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
               ("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.3", None)),
        slice_([{"port": 8000}], ("fd00::7", True)),  # no port named http: the first
        slice_([], ("10.0.0.9", True)),  # no port: nothing to ask
    ]
    assert gateways.load_urls(slices) == ["http://10.0.0.1:8080/internal/load", "http://10.0.0.3:8080/internal/load",
                                          "http://[fd00::7]:8000/internal/load"]


def test_an_endpoint_in_two_slices_is_asked_once() -> None:
    one = slice_([{"name": "http", "port": 80}], ("10.0.0.1", True))
    assert gateways.load_urls([one, one]) == ["http://10.0.0.1:80/internal/load"]


def test_answers_are_summed_per_server_and_static_routes_left_out() -> None:
    first = gateways.parse({"servers": {"a/chat": {"model": "chat", "inFlight": 5, "held": 2},
                                        "static/local": {"model": "local", "inFlight": 9, "held": 0}}})
    second = gateways.parse({"servers": {"a/chat": {"model": "chat", "inFlight": 4, "held": 0, "refused": 3},
                                         "b/embed": {"model": "embed", "inFlight": 1}}})
    assert gateways.total([first, second]) == {"a/chat": gateways.ServerLoad(9, 2, refused=3),
                                                "b/embed": gateways.ServerLoad(1, 0)}


@pytest.mark.parametrize("answer", [[], {}, {"servers": []}, {"servers": {"a/b": 3}},
                                    {"servers": {"a/b": {"inFlight": -1}}}, {"servers": {"a/b": {"inFlight": "2"}}},
                                    {"servers": {"a/b": {"inFlight": True}}}, {"servers": {"a/b": {"refused": -2}}}])
def test_a_malformed_answer_is_refused(answer: object) -> None:
    with pytest.raises(ValueError):
        gateways.parse(answer)


def test_load_is_complete_only_when_every_gateway_answered() -> None:
    assert gateways.Load({}, asked=2, answered=2).complete
    assert not gateways.Load({}, asked=2, answered=1).complete
    assert not gateways.Load({}, asked=0, answered=0).complete


@pytest.mark.parametrize("value", ["llmserver-system/llmserver-gateway", " ns/gw "])
def test_service_reference(value: str) -> None:
    ref = gateways.ServiceRef.parse(value)
    assert ref.labels == {"kubernetes.io/service-name": ref.name} and "/" not in ref.namespace


@pytest.mark.parametrize("value", ["gateway", "/gw", "ns/", "a/b/c"])
def test_service_reference_must_be_namespace_slash_name(value: str) -> None:
    with pytest.raises(ValueError):
        gateways.ServiceRef.parse(value)
