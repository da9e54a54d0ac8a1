"""How an upstream attempt is classified: retried, 504, 502, passed on, or a broken stream."""

from __future__ import annotations

import aiohttp
import pytest

from llmserver_gateway import outcome

Kind, Stage = outcome.Kind, outcome.Stage


@pytest.mark.parametrize("status", [429, 502, 503])
def test_overload_and_bad_gateway_answers_go_to_another_endpoint(status: int) -> None:
    result = outcome.of_status(status, gateway_key_sent=False)
    assert (result.kind, result.reason, result.detail) == (Kind.RETRY, f"status_{status}", f"answered {status}")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_gateway_key_is_a_gateway_problem_but_the_callers_own_401_passes(status: int) -> None:
    assert outcome.of_status(status, gateway_key_sent=True).kind is Kind.AUTH_REFUSED
    assert outcome.of_status(status, gateway_key_sent=True).reason == f"status_{status}"
    assert outcome.of_status(status, gateway_key_sent=False) is outcome.PASSED


@pytest.mark.parametrize("status", [200, 400, 404, 500, 504])
def test_other_answers_pass_through_without_an_upstream_error(status: int) -> None:
    assert outcome.of_status(status, gateway_key_sent=True) == outcome.Outcome(Kind.PASSED)


def test_a_silent_upstream_is_a_timeout_not_a_retry() -> None:
    for stage in (Stage.CONNECT, Stage.BODY):
        result = outcome.of_error(aiohttp.SocketTimeoutError("read"), stage)
        assert (result.kind, result.reason) == (Kind.TIMEOUT, "read_timeout")


def test_connect_and_body_failures_are_retried_and_named_by_stage() -> None:
    refused = outcome.of_error(aiohttp.ClientConnectionError("refused 10.0.0.1:80"), Stage.CONNECT)
    assert (refused.kind, refused.reason) == (Kind.RETRY, "connect")
    assert refused.detail == "failed (connect): ClientConnectionError: refused 10.0.0.1:80"
    # A connect timeout is an endpoint to skip, unlike a read timeout.
    assert outcome.of_error(aiohttp.ConnectionTimeoutError(), Stage.CONNECT).kind is Kind.RETRY
    assert outcome.of_error(OSError("unreachable"), Stage.CONNECT).reason == "connect"
    body = outcome.of_error(aiohttp.ClientPayloadError("cut"), Stage.BODY)
    assert (body.kind, body.reason) == (Kind.RETRY, "body")


def test_mid_stream_failures_end_the_stream() -> None:
    timeout = outcome.of_error(aiohttp.SocketTimeoutError(), Stage.STREAM)
    assert (timeout.kind, timeout.reason) == (Kind.STREAM_BROKEN, "read_timeout")
    cut = outcome.of_error(aiohttp.ClientPayloadError("cut"), Stage.STREAM)
    assert (cut.kind, cut.reason) == (Kind.STREAM_BROKEN, "stream")
    assert cut.detail == "failed mid-stream: ClientPayloadError: cut"


def test_a_client_that_left_is_no_upstream_error() -> None:
    assert outcome.CLIENT_GONE.kind is Kind.CLIENT_GONE and outcome.CLIENT_GONE.reason is None


def test_a_404_is_retried_only_on_adapter_routes() -> None:
    assert outcome.of_status(404, gateway_key_sent=False) is outcome.PASSED
    retried = outcome.of_status(404, gateway_key_sent=False, adapter=True)
    assert retried.kind is Kind.RETRY and retried.reason == "status_404"
