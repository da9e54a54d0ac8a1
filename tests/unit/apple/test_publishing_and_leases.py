"""The Mac's Service/EndpointSlice builders and Lease liveness: pure, validated like real objects."""

from __future__ import annotations

import datetime

import kubernetes_validate
import pytest

import llmserver_api
from llmserver_operator.apple import leases, publishing

NOW = datetime.datetime(2026, 11, 25, 12, 0, 0, tzinfo=datetime.UTC)


def server() -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "metadata": {"name": "qwen-mlx", "namespace": "ml"},
        "spec": {"model": "qwen", "backend": "mlx", "source": {"huggingFace": {"repo": "mlx-community/q"}}},
    })


def test_service_has_no_selector_and_validates():
    service = publishing.build_apple_service(server())
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"][0]["name"] == "http"
    kubernetes_validate.validate(service, "1.30", strict=True)


@pytest.mark.parametrize("address,family", [("192.168.1.20", "IPv4"), ("fd00::20", "IPv6")])
def test_endpoint_slice_points_at_the_mac(address, family):
    slice_ = publishing.build_apple_endpoint_slice(server(), "studio", address, 18001, True, "llmserver-system")
    kubernetes_validate.validate(slice_, "1.30", strict=True)
    assert slice_["metadata"]["name"] == "qwen-mlx-apple"
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "qwen-mlx"
    assert slice_["addressType"] == family
    assert slice_["endpoints"][0] == {"addresses": [address],
                                      "conditions": {"ready": True, "serving": True, "terminating": False}}
    assert slice_["ports"] == [{"name": "http", "port": 18001, "protocol": "TCP"}]
    assert slice_["metadata"]["annotations"][publishing.API_KEY_SECRET_ANNOTATION] == \
        "llmserver-system/applenode-studio-key"


def lease(renewed: datetime.datetime | None, duration: int | None = 15) -> dict:
    spec = {"holderIdentity": "studio"}
    if renewed is not None:
        spec["renewTime"] = leases.format_micro_time(renewed)
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    return {"spec": spec}


def test_a_lease_renewed_within_its_duration_is_alive():
    alive, reason, _ = leases.liveness(lease(NOW), silent_seconds=5)
    assert alive and reason == "HeartbeatReceived"


def test_a_lease_silent_past_its_duration_is_a_missed_heartbeat():
    alive, reason, message = leases.liveness(lease(NOW), silent_seconds=40)
    assert not alive and reason == "HeartbeatMissed" and "40s" in message


@pytest.mark.parametrize("skew_hours", [-1, 1, 24])
def test_the_renewers_clock_does_not_matter(skew_hours):
    """Silence is the operator's own observation: renewTime hours off our clock changes nothing."""
    skewed = lease(NOW + datetime.timedelta(hours=skew_hours))
    assert leases.liveness(skewed, silent_seconds=1)[0] is True
    assert leases.liveness(skewed, silent_seconds=16)[0] is False


@pytest.mark.parametrize("obj,reason", [(None, "LeaseNotFound"), (lease(None), "LeaseIncomplete"),
                                        (lease(NOW, None), "LeaseIncomplete")])
def test_missing_or_incomplete_lease_is_not_alive(obj, reason):
    assert leases.liveness(obj, 0.0)[:2] == (False, reason)


def test_micro_time_round_trips():
    assert leases.parse_time(leases.format_micro_time(NOW)) == NOW
