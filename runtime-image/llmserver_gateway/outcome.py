"""What one upstream attempt ended with, decided by pure functions so every case is testable alone.

The proxy asks `of_status` when the upstream answered and `of_error` when a call raised; the
`Outcome` says whether the request may go to another endpoint (nothing was sent to the client
yet), what the client gets, and the `reason` label of `llmserver_gateway_upstream_errors`.
"""

from __future__ import annotations

import dataclasses
import enum

import aiohttp

# 429 from a replica means its queue is full (the runtime sheds load that way), not that the
# caller is over a limit: another replica may have room. The gateway's own per-key limit is separate.
RETRYABLE_STATUS = frozenset({429, 502, 503})


class Kind(enum.Enum):
    """How an attempt ended, as the retry decision and the client's answer see it."""

    PASSED = "passed"  # the upstream's answer goes to the client as it is (2xx, or its own 4xx/5xx)
    RETRY = "retry"  # failed before anything was sent: another endpoint may be tried
    TIMEOUT = "timeout"  # the upstream went silent: 504, never retried (it may still be working)
    AUTH_REFUSED = "auth_refused"  # the upstream refused the key the gateway added: 502
    STREAM_BROKEN = "stream_broken"  # failed mid-stream: the stream ends with an SSE error event
    CLIENT_GONE = "client_gone"  # the client left mid-answer: counted as 499, not an upstream error
    NOT_ALLOWED = "not_allowed"  # the Proxy host policy refused the upstream: 502, nothing was sent


class Stage(enum.Enum):
    """Where in the attempt an exception was raised."""

    CONNECT = "connect"  # sending the request, up to the response headers
    BODY = "body"  # reading a non-streamed answer
    STREAM = "stream"  # relaying an SSE stream, once bytes went to the client


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """`reason` is the upstream_errors label (None when the upstream did nothing wrong); `detail`
    ends the log line "endpoint E of model M ..." (exception texts name host and port, never headers)."""

    kind: Kind
    reason: str | None = None
    detail: str = ""


PASSED = Outcome(Kind.PASSED)
CLIENT_GONE = Outcome(Kind.CLIENT_GONE)
# The upstream answered more than `max_response_bytes`: the client gets an error (a 502, or an SSE
# error event when the stream had started) and the connection is dropped, never pooled.
def not_allowed(why: object) -> Outcome:
    """A Proxy upstream the host policy refused (by its URL, or by what its name resolved to)."""
    return Outcome(Kind.NOT_ALLOWED, "not_allowed", f"is refused by the Proxy host policy: {why}")


TOO_LARGE = Outcome(Kind.STREAM_BROKEN, "too_large", "answered more than the gateway relays")


def of_status(status: int, gateway_key_sent: bool, adapter: bool = False) -> Outcome:
    """An upstream answer, before its body is read. For an adapter route (`adapter`) a 404 means the
    replica no longer holds the adapter (unloaded since the gateway last asked): another may."""
    if status in RETRYABLE_STATUS or (adapter and status == 404):
        return Outcome(Kind.RETRY, f"status_{status}", f"answered {status}")
    if status in (401, 403) and gateway_key_sent:
        # A gateway configuration problem, not the caller's: passing 401 on would tell a caller
        # with a valid key it has none.
        return Outcome(Kind.AUTH_REFUSED, f"status_{status}", f"refused the gateway's API key ({status})")
    return PASSED


def of_error(exc: BaseException, stage: Stage) -> Outcome:
    """An exception from the upstream call. A read timeout (aiohttp's SocketTimeoutError) means a
    silent upstream; a connect timeout or a refused connection is an endpoint to skip."""
    if stage is Stage.STREAM:
        reason = "read_timeout" if isinstance(exc, TimeoutError) else "stream"
        return Outcome(Kind.STREAM_BROKEN, reason, f"failed mid-stream: {describe(exc)}")
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return Outcome(Kind.TIMEOUT, "read_timeout", "timed out waiting for an answer")
    return Outcome(Kind.RETRY, stage.value, f"failed ({stage.value}): {describe(exc)}")


def describe(exc: BaseException) -> str:
    """Exception class and text; aiohttp's texts name host and port, never request headers."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
