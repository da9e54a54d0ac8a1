"""What the mlx and mlx-vlm backends share: deltas ending at stop strings, the token budget, sampling.

mlx-lm and mlx-vlm stream responses of the same shape (`text`, `prompt_tokens`,
`generation_tokens`, `finish_reason`), but neither knows OpenAI stop strings. Stopping inside the
worker thread ends generation at once (the engine is free for the next request sooner) and keeps
the usage honest: the completion counts the tokens up to the stop, not a few beyond it.
"""

from __future__ import annotations

import inspect
import json
import logging
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

from llmserver_backends import base, stops, token_logprobs, vllm_inputs

log = logging.getLogger(__name__)


def deltas(
    responses: Iterator[Any],
    stop: tuple[str, ...],
    logprobs: int | None = None,
    token_bytes: Callable[[int], bytes] | None = None,
) -> Iterator[base.Delta]:
    """mlx-lm / mlx-vlm responses as our Deltas (cumulative usage), ending at a stop string.

    With `logprobs` (k alternatives), each response's token gets an entry from the engine's
    log-probability vector (computed after logit_bias and the penalties, before sampling). Each
    token gets one entry: mlx-vlm's last response repeats the last token, and a "stop" one of
    either engine carries the end-of-sequence token, which is not part of the text."""
    matcher = stops.StopMatcher(stop)
    prompt_tokens = completion_tokens = 0
    held: tuple[base.TokenLogprob, ...] = ()
    entries = 0
    last = False  # set before the final delta: leaving after it is no early stop
    try:
        for response in responses:
            prompt_tokens, completion_tokens = int(response.prompt_tokens), int(response.generation_tokens)
            if logprobs is not None and token_bytes is not None and response.finish_reason != "stop":
                if completion_tokens > entries:
                    entries += 1
                    held += _entry(response, logprobs, token_bytes)
            text, stopped = matcher.feed(response.text)
            if stopped or response.finish_reason is not None:
                reason = "length" if response.finish_reason == "length" and not stopped else "stop"
                last = True
                final = text if stopped else text + matcher.flush()
                yield base.Delta(final, prompt_tokens, completion_tokens, reason, logprobs=held)
                return
            if text:
                yield base.Delta(text, prompt_tokens, completion_tokens, logprobs=held)
                held = ()
        last = True
        yield base.Delta(matcher.flush(), prompt_tokens, completion_tokens, "stop", logprobs=held)
    except GeneratorExit:
        # The consumer left mid-stream (client gone, timeout): say how far the engine got.
        if not last:
            log.info("generation stopped early after %d completion tokens (consumer left)", completion_tokens)
        raise
    finally:
        # Close the engine's generator here, in the worker thread, not later in the GC.
        close = getattr(responses, "close", None)
        if close is not None:
            close()


def _entry(response: Any, k: int, token_bytes: Callable[[int], bytes]) -> tuple[base.TokenLogprob, ...]:
    import numpy as np

    if response.token is None or response.logprobs is None:
        return ()
    row = np.asarray(response.logprobs, dtype=np.float64).reshape(-1)
    return (token_logprobs.entry(row, int(response.token), k, token_bytes),)


def sampling_kwargs(params: base.SamplingParams, context: int | None) -> dict[str, Any]:
    """logit_bias and the penalties as the keyword arguments both mlx-lm's
    make_logits_processors and mlx-vlm's generate_step take; the penalties look back over the
    whole context (mlx's default is the last 20 tokens)."""
    window = context or 4096
    kwargs: dict[str, Any] = {}
    if params.logit_bias:
        kwargs["logit_bias"] = dict(params.logit_bias)
    if params.repetition_penalty != 1.0:
        kwargs.update(repetition_penalty=params.repetition_penalty, repetition_context_size=window)
    if params.presence_penalty:
        kwargs.update(presence_penalty=params.presence_penalty, presence_context_size=window)
    if params.frequency_penalty:
        kwargs.update(frequency_penalty=params.frequency_penalty, frequency_context_size=window)
    return kwargs


def context_length(model_path: str) -> int | None:
    """max_position_embeddings from config.json (the text model's, for a VLM), if stated."""
    path = pathlib.Path(model_path) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for section in (config.get("text_config") or {}, config):
        value = section.get("max_position_embeddings")
        if isinstance(value, int) and value > 0:
            return value
    return None


def budget(prompt_tokens: int, requested: int | None, default: int | None, context: int | None) -> int:
    """Completion tokens allowed: the request's max_tokens, else the default, else what the
    context has left. Over the context is a ContextLengthExceeded, as on every backend."""
    wanted = requested if requested is not None else default
    if context is None:
        return wanted if wanted is not None else 256
    if wanted is not None and prompt_tokens < context:
        # A configured default is capped by the context rather than refused; a request's is checked.
        wanted = wanted if requested is not None else min(wanted, context - prompt_tokens)
    return vllm_inputs.completion_budget(prompt_tokens, wanted, context)


def top_p(value: float) -> float:
    """OpenAI's top_p=1 (no nucleus filter) is mlx-lm's top_p=0 (disabled)."""
    return 0.0 if value >= 1.0 else value


def engine_kwargs(
    extra_args: tuple[str, ...], generator: Callable[..., Any], managed: frozenset[str]
) -> dict[str, Any]:
    """spec.extraArgs (`key=value`) as keyword arguments of the engine's generation step.

    Checked at load against the step's signature, so a typo fails the load with the accepted
    names instead of failing every request; options this backend sets per request (`managed`)
    cannot be overridden. Example: `kv_bits=8 prefill_step_size=512`.
    """
    try:
        parsed = base.parse_key_value_args(extra_args)
    except ValueError as error:
        raise base.BackendError(f"extraArgs: {error}") from error
    accepted = {
        name
        for name, parameter in inspect.signature(generator).parameters.items()
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD) and name not in managed
    }
    unknown = sorted(set(parsed) - accepted)
    if unknown:
        raise base.BackendError(
            f"extraArgs: {', '.join(unknown)} not accepted by {generator.__module__}.{generator.__name__}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    return parsed
