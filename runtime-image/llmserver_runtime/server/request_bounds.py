"""Request checks the schema cannot make, run by the routes before admission (issue 19).

Each failure is a 400 in OpenAI's shape naming the parameter, so no engine is ever handed input
it may crash on (llama.cpp aborts the process on an empty sequence) or numbers it cannot hold."""

from __future__ import annotations

from llmserver_api.protocol import errors

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# No engine counts a completion longer than a signed 32-bit integer.
MAX_COMPLETION_TOKENS = 2**31 - 1

TextOrBatch = str | list[str] | list[int] | list[list[int]]


def batch(value: TextOrBatch, param: str, max_items: int, token_ids: str) -> list[str]:
    """A text-or-batch field (prompt, input) as a list of texts.

    An empty batch, one over `max_items`, or token ids (they would need the client's tokenizer to
    match ours, and out-of-vocabulary ids crash some engines) are 400s naming `param`; `token_ids`
    words that refusal ("prompts are", "input is")."""
    if isinstance(value, str):
        return [value]
    if not value:
        raise errors.invalid_request(f"{param} must not be empty.", param)
    if len(value) > max_items:
        raise errors.invalid_request(
            f"{param} has {len(value)} items; at most {max_items} are allowed per request.", param, "too_many_inputs"
        )
    if all(isinstance(item, str) for item in value):
        return list(value)  # type: ignore[arg-type]
    raise errors.invalid_request(f"Token-id {token_ids} not supported; send text.", param, "unsupported_parameter")


def non_empty(texts: list[str], param: str, *, single: bool = False) -> None:
    """400 naming `param` when a text is empty: OpenAI refuses an empty embeddings input too, and
    an empty sequence is not something every engine survives."""
    for index, text in enumerate(texts):
        if not text:
            where = param if single else f"{param}[{index}]"
            raise errors.invalid_request(f"{where} must not be an empty string.", param, "empty_input")


def max_items(items: list[object], param: str, limit: int) -> None:
    """400 naming `param` when a list holds more than `limit` items."""
    if len(items) > limit:
        raise errors.invalid_request(
            f"{param} has {len(items)} items; at most {limit} are allowed per request.", param, "too_many_inputs"
        )


def max_tokens(value: int | None, param: str) -> None:
    """400 naming `param` for a completion budget no engine's counters hold. A budget that does not
    fit the context beside the prompt stays the engine's 400 context_length_exceeded (the contract
    since the start, and OpenAI's answer too)."""
    if value is not None and value > MAX_COMPLETION_TOKENS:
        raise errors.invalid_request(
            f"{param} is too large: {value}. No model here generates more than {MAX_COMPLETION_TOKENS} tokens.",
            param,
            "invalid_value",
        )


def seed(value: int | None) -> None:
    """400 for a seed outside a signed 64-bit integer (what OpenAI and the engines take)."""
    if value is not None and not INT64_MIN <= value <= INT64_MAX:
        raise errors.invalid_request(f"seed must be a 64-bit integer; got {value}.", "seed", "invalid_value")
