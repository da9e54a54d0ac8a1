"""Bounded request bodies, checked before any route parses them (pure ASGI middleware).

A declared Content-Length over the limit is a 413 before a byte of the body is read; a chunked
body is counted as it arrives and refused the moment it passes the limit. The whole body is then
checked as text (UTF-8, nesting depth, lone surrogates; see json_checks) and replayed to the app,
after which `receive` is the server's again, so disconnect watching keeps working."""

from __future__ import annotations

import asyncio

from starlette import types

from llmserver_api.protocol import errors
from llmserver_runtime.server import json_checks, limits

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_INLINE_CHECK_BYTES = 256 * 1024


def too_large(max_bytes: int) -> errors.APIError:
    """413 in OpenAI's shape."""
    return errors.APIError(
        413, f"The request body is larger than {max_bytes} bytes.", param=None, code="request_too_large"
    )


async def send_error(send: types.Send, error: errors.APIError) -> None:
    """One whole OpenAI-shaped error response."""
    body = error.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(b"connection", b"close")]  # the unread rest of the body must not be parsed as a request
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: types.Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


class BodyGuard:
    """Reads each request body within `limits.max_body_bytes` and checks it before the app runs."""

    def __init__(self, app: types.ASGIApp, input_limits: limits.InputLimits) -> None:
        self.app = app
        self.limits = input_limits

    async def __call__(self, scope: types.Scope, receive: types.Receive, send: types.Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        max_bytes = self.limits.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None and declared < 0:
            await send_error(send, errors.invalid_request("Content-Length is not a number.", code="invalid_header"))
            return
        if declared is not None and declared > max_bytes:
            await send_error(send, too_large(max_bytes))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left while sending: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await send_error(send, too_large(max_bytes))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # A few MiB of brackets take a fraction of a second to scan: off the event loop then.
        problem = await asyncio.to_thread(self._check, body) if size > _INLINE_CHECK_BYTES else self._check(body)
        if problem is not None:
            await send_error(send, problem)
            return
        await self.app(scope, _replay(body, receive), send)

    def _check(self, body: bytes) -> errors.APIError | None:
        if not body:
            return None
        text, problem = json_checks.decode(body)
        if text is None:
            return problem
        return json_checks.check_depth(text, self.limits.max_json_depth) or json_checks.check_surrogates(text)


def _replay(body: bytes, receive: types.Receive) -> types.Receive:
    """`receive` that hands out the buffered body once, then the server's own messages."""
    pending = True

    async def replayed() -> types.Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
