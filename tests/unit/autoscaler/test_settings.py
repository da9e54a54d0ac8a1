"""The autoscaler's settings: the gateway Service is namespace/name, the interval and timeout positive."""

from __future__ import annotations

import pydantic
import pytest
from llmserver_operator import handlers
from llmserver_operator import settings as settings_mod
from testkit import emulator


def test_defaults_poll_every_second_and_read_no_gateway() -> None:
    settings = settings_mod.Settings(kubeconfig="unused")
    assert settings.gateway_service is None
    assert (settings.autoscale_interval_seconds, settings.autoscale_timeout_seconds) == (1.0, 1.0)


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_GATEWAY_SERVICE", "llmserver-system/llmserver-gateway")
    monkeypatch.setenv("LLMSERVER_OPERATOR_AUTOSCALE_INTERVAL_SECONDS", "0.5")
    monkeypatch.setenv("LLMSERVER_OPERATOR_AUTOSCALE_TIMEOUT_SECONDS", "2")
    settings = settings_mod.Settings()
    assert settings.gateway_service == "llmserver-system/llmserver-gateway"
    assert (settings.autoscale_interval_seconds, settings.autoscale_timeout_seconds) == (0.5, 2.0)


@pytest.mark.parametrize("field", [{"gateway_service": "gateway"}, {"gateway_service": "ns/Gateway"},
                                   {"gateway_service": "a/b/c"}, {"autoscale_interval_seconds": 0},
                                   {"autoscale_timeout_seconds": -1}])
def test_bad_values_are_refused(field: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        settings_mod.Settings(kubeconfig="unused", **field)


def test_the_memo_carries_an_autoscaler_reading_the_configured_service() -> None:
    with emulator.KubeEmulator() as kube:  # a kubeconfig to build the client from; nothing is called
        memo = handlers.make_memo(settings_mod.Settings(kubeconfig=kube.kubeconfig, gateway_service="gw/front",
                                                        autoscale_interval_seconds=3))
    assert (memo.autoscaler.service.namespace, memo.autoscaler.service.name) == ("gw", "front")
    assert memo.autoscaler.interval == 3 and memo.autoscaler_task is None
