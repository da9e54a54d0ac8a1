"""Every failure becomes one OpenAI-shaped response (protocol.errors.APIError).

Backend exceptions are mapped here: client mistakes (context too long, unsupported option) keep
their message; engine failures are logged with their traceback and answered without internals."""

from __future__ import annotations

import asyncio
import logging

import fastapi
import fastapi.exceptions
from llmserver_backends import base, threads
from starlette import exceptions as starlette_exceptions
from starlette import requests, responses

from llmserver_api.protocol import errors

log = logging.getLogger("llmserver.runtime")


def from_exception(exc: BaseException, param: str | None = None) -> errors.APIError:
    """The APIError to answer for `exc` raised while serving a request about `param`."""
    if isinstance(exc, errors.APIError):
        return exc
    if isinstance(exc, base.ContextLengthExceeded):
        return errors.context_length_exceeded(str(exc), param)
    if isinstance(exc, base.UnsupportedParameter):
        return errors.invalid_request(str(exc), exc.param, "unsupported_parameter")
    if isinstance(exc, base.UnsupportedRequest):
        return errors.invalid_request(str(exc), param)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return errors.timeout()
    if isinstance(exc, base.BackendUnavailable):
        log.error("backend unavailable: %s", exc)
        return errors.unavailable("The model is temporarily unavailable.", retry_after_s=5)
    log.error("backend failure", exc_info=exc)
    return errors.server_error()


def response(error: errors.APIError) -> responses.Response:
    """The HTTP response for an APIError."""
    return responses.Response(error.body(), error.status_code, error.headers, media_type="application/json")


async def _api_error(_: requests.Request, exc: Exception) -> responses.Response:
    assert isinstance(exc, errors.APIError)
    return response(exc)


async def _validation_error(_: requests.Request, exc: Exception) -> responses.Response:
    assert isinstance(exc, fastapi.exceptions.RequestValidationError)
    return response(errors.from_validation_errors(exc.errors()))


async def _http_error(request: requests.Request, exc: Exception) -> responses.Response:
    assert isinstance(exc, starlette_exceptions.HTTPException)
    if exc.status_code == 404:
        return response(errors.not_found(request.url.path))
    if exc.status_code == 405:
        return response(errors.method_not_allowed(request.method, request.url.path))
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return response(errors.APIError(exc.status_code, str(exc.detail), type=kind))


async def _unexpected(_: requests.Request, exc: Exception) -> responses.Response:
    return response(from_exception(exc))


def install(app: fastapi.FastAPI) -> None:
    """Register the handlers (FastAPI's default 422 becomes OpenAI's 400)."""
    app.add_exception_handler(errors.APIError, _api_error)
    app.add_exception_handler(fastapi.exceptions.RequestValidationError, _validation_error)
    app.add_exception_handler(starlette_exceptions.HTTPException, _http_error)
    app.add_exception_handler(base.BackendError, _unexpected)
    app.add_exception_handler(threads.Cancelled, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
