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

from llmserver_backends import base, stops, vllm_inputs

log = logging.getLogger(__name__)


def deltas(responses: Iterator[Any], stop: tuple[str, ...]) -> Iterator[base.Delta]:
    """mlx-lm / mlx-vlm responses as our Deltas (cumulative usage), ending at a stop string."""
    matcher = stops.StopMatcher(stop)
    prompt_tokens = completion_tokens = 0
    last = False  # set before the final delta: leaving after it is no early stop
    try:
        for response in responses:
            prompt_tokens, completion_tokens = int(response.prompt_tokens), int(response.generation_tokens)
            text, stopped = matcher.feed(response.text)
            if stopped or response.finish_reason is not None:
                reason = "length" if response.finish_reason == "length" and not stopped else "stop"
                last = True
                yield base.Delta(text if stopped else text + matcher.flush(), prompt_tokens, completion_tokens, reason)
                return
            if text:
                yield base.Delta(text, prompt_tokens, completion_tokens)
        last = True
        yield base.Delta(matcher.flush(), prompt_tokens, completion_tokens, "stop")
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
