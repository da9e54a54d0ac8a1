"""Pieces shared by several OpenAI endpoints."""

from __future__ import annotations

import pydantic

# Requests ignore fields they do not know (clients send `user`, penalties, ...); fields that
# change semantics and are not supported are declared and refused explicitly by the server.
REQUEST_CONFIG = pydantic.ConfigDict(extra="ignore", populate_by_name=True)


class Usage(pydantic.BaseModel):
    """Token accounting as OpenAI reports it; counts come from the model's own tokenizer."""

    prompt_tokens: int = pydantic.Field(description="Tokens in the prompt (after the chat template).")
    completion_tokens: int = pydantic.Field(default=0, description="Tokens generated.")
    total_tokens: int = pydantic.Field(description="prompt_tokens + completion_tokens.")


class StreamOptions(pydantic.BaseModel):
    """Streaming options."""

    model_config = REQUEST_CONFIG

    include_usage: bool = pydantic.Field(
        default=False, description="Send a last chunk with empty choices and the request's usage."
    )


StopSequences = str | list[str] | None


def stop_list(stop: StopSequences) -> tuple[str, ...]:
    """`stop` normalised to a tuple without empty strings."""
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    return tuple(s for s in items if s)
