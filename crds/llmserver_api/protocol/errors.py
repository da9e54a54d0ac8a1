"""The one error path: every 4xx/5xx from the runtime and the gateway is
`{"error": {"message", "type", "param", "code"}}`, built only through `APIError`.

Framework-free on purpose: the server (FastAPI) and the gateway (aiohttp) both turn an `APIError`
into a response with `status_code`, `headers` and `body()`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pydantic

GENERIC_SERVER_MESSAGE = "The server had an error while processing your request."


class ErrorDetail(pydantic.BaseModel):
    """The body of an OpenAI error."""

    message: str = pydantic.Field(description="Human-readable explanation, safe to show to clients.")
    type: str = pydantic.Field(description="Error class, e.g. invalid_request_error or server_error.")
    param: str | None = pydantic.Field(default=None, description="The request field at fault, if any.")
    code: str | None = pydantic.Field(default=None, description="Machine-readable code, e.g. model_not_found.")


class ErrorResponse(pydantic.BaseModel):
    """`{"error": {...}}` as OpenAI sends it."""

    error: ErrorDetail = pydantic.Field(description="The error.")


class APIError(Exception):
    """An error that becomes exactly one OpenAI-shaped HTTP response."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = ErrorResponse(error=ErrorDetail(message=message, type=type, param=param, code=code))
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def detail(self) -> ErrorDetail:
        """The `error` object of the body."""
        return self.response.error

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready body."""
        return self.response.model_dump()

    def body(self) -> bytes:
        """The encoded JSON body."""
        return self.response.model_dump_json().encode()

    def sse_event(self) -> bytes:
        """The error as one server-sent event, for failures after a stream has started."""
        return b"data: " + self.body() + b"\n\n"


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """400: the request is malformed or asks for something this server cannot do."""
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str) -> APIError:
    """404 for a model this server (or gateway) does not serve."""
    return APIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def context_length_exceeded(message: str, param: str | None = "messages") -> APIError:
    """400: prompt (plus max_tokens) does not fit the model's context window."""
    return APIError(400, message, param=param, code="context_length_exceeded")


def capability_missing(model: str, capability: str, param: str | None = None) -> APIError:
    """400: the model lacks the capability the endpoint or content needs (named in the message)."""
    return APIError(
        400,
        f"The model `{model}` does not support {capability}.",
        param=param,
        code="capability_not_supported",
    )


def authentication_failed(message: str = "Invalid or missing API key.") -> APIError:
    """401 without echoing the key that was sent."""
    return APIError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def permission_denied(message: str) -> APIError:
    """403: the key is valid but may not use this model."""
    return APIError(403, message, type="permission_error", code="model_not_allowed")


def rate_limited(message: str, retry_after_s: float = 1.0) -> APIError:
    """429 with Retry-After (whole seconds, at least 1)."""
    retry_after = str(max(1, round(retry_after_s)))
    return APIError(
        429, message, type="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": retry_after}
    )


def server_error(message: str = GENERIC_SERVER_MESSAGE) -> APIError:
    """500 that says nothing about internals (they go to the log, not the client)."""
    return APIError(500, message, type="server_error", code="internal_error")


def unavailable(message: str, retry_after_s: float | None = None) -> APIError:
    """503: not ready, overloaded upstream or engine gone; retrying later may help."""
    headers = {"Retry-After": str(max(1, round(retry_after_s)))} if retry_after_s is not None else None
    return APIError(503, message, type="server_error", code="service_unavailable", headers=headers)


def timeout(message: str = "The request timed out.") -> APIError:
    """504: the request ran past the server's request timeout."""
    return APIError(504, message, type="timeout_error", code="timeout")


def not_found(path: str) -> APIError:
    """404 for a route that does not exist."""
    return APIError(404, f"Unknown request URL: {path}.", code="unknown_url")


def method_not_allowed(method: str, path: str) -> APIError:
    """405 for a known route called with the wrong method."""
    return APIError(405, f"Method {method} is not allowed for {path}.", code="method_not_allowed")


def _loc_to_param(loc: Sequence[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # pydantic adds union-member tags such as "str" or "list[str]" or "function-after[...]"
    # after the real field path; they are noise for a client.
    cleaned: list[str] = []
    for part in parts:
        if cleaned and (part[:1].islower() and ("[" in part or part in _TYPE_TAGS)):
            break
        cleaned.append(part)
    if not cleaned:
        return None
    text = cleaned[0]
    for part in cleaned[1:]:
        text += f"[{part}]" if part.isdigit() else f".{part}"
    return text


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal", "tagged-union", "function-after"}


def from_validation_errors(errors: Iterable[Mapping[str, Any]]) -> APIError:
    """400 from pydantic/FastAPI validation errors, naming the first offending field."""
    errors = list(errors)
    if not errors:
        return invalid_request("Invalid request body.")
    if any(error.get("type") == "json_invalid" for error in errors):
        return invalid_request("The request body is not valid JSON.")
    if any(tuple(error.get("loc", ())) == ("body",) for error in errors):
        return invalid_request("The request body must be a JSON object.")
    messages: list[str] = []
    first_param: str | None = None
    for error in errors:
        param = _loc_to_param(error.get("loc", ()))
        first_param = first_param or param
        text = str(error.get("msg", "invalid value"))
        messages.append(f"{param}: {text}" if param else text)
    unique = list(dict.fromkeys(messages))
    return invalid_request("Invalid request: " + "; ".join(unique[:5]), param=first_param)


def parse_error(payload: Any) -> ErrorDetail | None:
    """The ErrorDetail inside an upstream JSON body, or None when it is not OpenAI-shaped."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("error"), Mapping):
        return None
    try:
        return ErrorDetail.model_validate(payload["error"])
    except pydantic.ValidationError:
        return None
