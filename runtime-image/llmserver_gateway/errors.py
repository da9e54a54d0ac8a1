"""aiohttp responses for the one OpenAI error shape (`llmserver_api.protocol.errors`).

The shape and its constructors live in the protocol package; this module only turns an APIError
into an aiohttp response and names the errors that only a gateway has (no endpoint, upstream down).
"""

from __future__ import annotations

from aiohttp import web

from llmserver_api.protocol import errors as protocol

APIError = protocol.APIError


def to_response(error: protocol.APIError) -> web.Response:
    """The HTTP response for an APIError, its headers (Retry-After, WWW-Authenticate) included."""
    return web.Response(
        status=error.status_code, body=error.body(), content_type="application/json", headers=error.headers
    )


def response(status: int, message: str, type: str, code: str | None = None, param: str | None = None) -> web.Response:
    """An OpenAI-shaped error response built from its parts."""
    return to_response(protocol.APIError(status, message, type=type, param=param, code=code))


def cold(model: str) -> protocol.APIError:
    """503 when a known model has no ready replica (starting, scaled to zero, or all failing)."""
    return protocol.unavailable(
        f"The model `{model}` has no ready endpoint right now (its replicas are starting, scaled "
        "to zero or failing); retry later.",
        retry_after_s=5,
    )


def no_endpoint(model: str) -> web.Response:
    """`cold` as a response."""
    return to_response(cold(model))


def sse_error(status: int, message: str, code: str) -> bytes:
    """One SSE event carrying an error, for failures after a stream has started."""
    return protocol.APIError(status, message, type="server_error", code=code).sse_event()
