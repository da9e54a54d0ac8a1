"""Helpers the generation routes share."""

from __future__ import annotations

import secrets
import time

from llmserver_backends import base
from starlette import responses

from llmserver_api.protocol import common, errors


def new_id(prefix: str) -> str:
    """An OpenAI-style response id."""
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    """Unix time for `created`."""
    return int(time.time())


def json_response(body: str | bytes) -> responses.Response:
    """A pre-serialised JSON body (skips FastAPI's jsonable_encoder)."""
    return responses.Response(body, media_type="application/json")


def sampling(
    *,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    stop: common.StopSequences,
    seed: int | None,
    choice: int,
) -> base.SamplingParams:
    """Backend sampling params for one choice; choice k>0 gets seed+k so n>1 differ but repeat."""
    return base.SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        stop=common.stop_list(stop),
        seed=None if seed is None else seed + choice,
    )


def refuse_if(condition: object, field: str, what: str) -> None:
    """400 naming `field` for a semantic option this server does not implement."""
    if condition:
        raise errors.invalid_request(
            f"{what} is not supported by this server.", param=field, code="unsupported_parameter"
        )

