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


def texts(value: str | list[str] | list[int] | list[list[int]], param: str, token_ids: str) -> list[str]:
    """A text-or-batch field (prompt, input) as a list of texts; an empty batch or token ids (which
    need the client's tokenizer to match ours) are 400s naming `param`. `token_ids` words the
    refusal: "prompts are" or "input is"."""
    if isinstance(value, str):
        return [value]
    if not value:
        raise errors.invalid_request(f"{param} must not be empty.", param)
    if all(isinstance(item, str) for item in value):
        return list(value)  # type: ignore[arg-type]
    raise errors.invalid_request(f"Token-id {token_ids} not supported; send text.", param, "unsupported_parameter")
