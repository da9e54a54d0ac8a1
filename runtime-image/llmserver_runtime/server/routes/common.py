"""Helpers the generation routes share."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from llmserver_backends import base
from starlette import responses

from llmserver_api.protocol import chat, common, completions, errors


def new_id(prefix: str) -> str:
    """An OpenAI-style response id."""
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    """Unix time for `created`."""
    return int(time.time())


def json_response(body: str | bytes) -> responses.Response:
    """A pre-serialised JSON body (skips FastAPI's jsonable_encoder)."""
    return responses.Response(body, media_type="application/json")


GenerationRequest = chat.ChatCompletionRequest | completions.CompletionRequest


def fingerprint(backend: base.ModelBackend) -> str:
    """`system_fingerprint`: the engine and model behind an answer (changes when either does)."""
    key = f"{backend.kind}:{backend.config.model_path}:{backend.config.served_model_name}"
    return "fp_" + hashlib.sha256(key.encode()).hexdigest()[:10]


def generation_options(body: GenerationRequest, backend: base.ModelBackend) -> dict[str, Any]:
    """The request's generation-changing options, each honoured by `backend`; anything else is a
    400 naming the field (code unsupported_parameter): never silently ignored. Unknown fields are
    refused the same way (a typo would otherwise change nothing, silently)."""
    for path in common.unknown_fields(body):
        raise errors.invalid_request(
            f"Unrecognized request argument supplied: {path}", param=path, code="unsupported_parameter"
        )
    if isinstance(body, chat.ChatCompletionRequest) and body.top_logprobs and not body.logprobs:
        raise errors.invalid_request("top_logprobs requires logprobs to be true.", "top_logprobs", "invalid_value")
    options = body.generation_options()
    for name in options:
        if name not in backend.supported_parameters:
            raise errors.invalid_request(
                f"{name} is not supported by the {backend.kind} engine serving this model.",
                param=name,
                code="unsupported_parameter",
            )
    if isinstance(body, completions.CompletionRequest) and body.echo and "logprobs" in options:
        raise errors.invalid_request(
            "logprobs with echo (prompt log probabilities) is not supported.", "logprobs", "unsupported_parameter"
        )
    try:
        backend.check_parameters(options)
    except base.UnsupportedParameter as exc:
        raise errors.invalid_request(str(exc), param=exc.param, code="unsupported_parameter") from exc
    vocab = backend.vocab_size
    if vocab is not None and options.get("top_k", 0) >= vocab:
        del options["top_k"]  # keeping every token is no top_k at all (and no engine overflows on it)
    return options


def sampling(
    body: GenerationRequest, options: dict[str, Any], *, max_tokens: int | None, choice: int, adapter: str | None = None
) -> base.SamplingParams:
    """Backend sampling params for one choice; choice k>0 gets seed+k so n>1 differ but repeat.
    `adapter`: the LoRA adapter the request's model names (None: the base model)."""
    logprobs = options.get("logprobs")
    top = options.get("top_logprobs", 0) if logprobs is True else logprobs
    seed = options.get("seed")
    return base.SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=common.stop_list(body.stop),
        seed=None if seed is None else seed + choice,
        presence_penalty=options.get("presence_penalty", 0.0),
        frequency_penalty=options.get("frequency_penalty", 0.0),
        repetition_penalty=options.get("repetition_penalty", 1.0),
        top_k=options.get("top_k", 0) if options.get("top_k", 0) > 0 else 0,
        min_p=options.get("min_p", 0.0),
        logit_bias={int(key): bias for key, bias in options.get("logit_bias", {}).items()},
        logprobs=None if logprobs is None else int(top),
        adapter=adapter,
    )

