"""Pieces shared by several OpenAI endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pydantic

# Requests that do not generate (embeddings, rerank) ignore fields they do not know.
REQUEST_CONFIG = pydantic.ConfigDict(extra="ignore", populate_by_name=True)
# Generation requests keep unknown fields (in `model_extra`) so that the server can refuse them by
# name: an OpenAI client sends only fields it knows, and a typo must never be silently ignored.
GENERATION_REQUEST_CONFIG = pydantic.ConfigDict(extra="allow", populate_by_name=True)


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


MAX_LOGIT_BIAS = 1024  # entries; bounded before any engine sees them


def check_logit_bias(value: dict[str, float] | None) -> dict[str, float] | None:
    """OpenAI's rule: token-id keys, biases in [-100, 100]; at most MAX_LOGIT_BIAS entries."""
    if value is not None and len(value) > MAX_LOGIT_BIAS:
        raise ValueError(f"logit_bias may hold at most {MAX_LOGIT_BIAS} entries")
    for key, bias in (value or {}).items():
        if not key.strip().lstrip("-").isdigit() or int(key) < 0:
            raise ValueError(f"logit_bias keys must be token ids; got {key!r}")
        if not -100.0 <= bias <= 100.0:
            raise ValueError(f"logit_bias values must be between -100 and 100; got {bias}")
    return value


def unknown_fields(model: pydantic.BaseModel, path: str = "") -> Iterator[str]:
    """Dotted paths (`foo`, `messages[0].bar`) of the fields `model` and its parts did not declare."""
    for name in model.model_extra or {}:
        yield f"{path}{name}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if isinstance(item, pydantic.BaseModel):
                where = f"{path}{name}" + (f"[{index}]" if index is not None else "")
                yield from unknown_fields(item, where + ".")


def sampling_options(request: pydantic.BaseModel) -> dict[str, Any]:
    """The optional sampling fields of a chat or completion request set to a value that changes
    generation (`presence_penalty: 0` does not; `presence_penalty: 0.5` does)."""
    neutral: dict[str, tuple[Any, ...]] = {
        "seed": (None,),
        "presence_penalty": (None, 0.0),
        "frequency_penalty": (None, 0.0),
        "repetition_penalty": (None, 1.0),
        "top_k": (None, 0, -1),
        "min_p": (None, 0.0),
        "logit_bias": (None, {}),
    }
    return {name: value for name, skip in neutral.items() if (value := getattr(request, name)) not in skip}


def null_is_default(model: type[pydantic.BaseModel], value: Any, info: pydantic.ValidationInfo) -> Any:
    """A field OpenAI's published document lets be null means its default (found by fuzzing)."""
    return model.model_fields[str(info.field_name)].default if value is None else value


def check_stops(value: StopSequences) -> StopSequences:
    """Every stop string is matched against every generated piece: the list stays short (OpenAI: 4)."""
    if isinstance(value, list) and len(value) > 16:
        raise ValueError("at most 16 stop sequences are allowed")
    return value


class SamplingFields(pydantic.BaseModel):
    """The sampling fields chat and completions share beyond temperature/top_p. Engines honour a
    subset (see `ModelBackend.supported_parameters`); the server refuses the rest with a 400."""

    seed: int | None = pydantic.Field(default=None, description="Seed for reproducible sampling.")
    presence_penalty: float | None = pydantic.Field(
        default=None, ge=-2.0, le=2.0, description="Penalise tokens that already appeared (OpenAI)."
    )
    frequency_penalty: float | None = pydantic.Field(
        default=None, ge=-2.0, le=2.0, description="Penalise tokens by how often they appeared (OpenAI)."
    )
    repetition_penalty: float | None = pydantic.Field(
        default=None, gt=0.0, le=10.0, description="Multiplicative repeat penalty (vLLM/HF extension; 1 = off)."
    )
    top_k: int | None = pydantic.Field(
        default=None, ge=-1, le=2**31 - 1, description="Sample among the k likeliest tokens (extension; 0 or -1 = off)."
    )
    min_p: float | None = pydantic.Field(
        default=None, ge=0.0, le=1.0, description="Drop tokens below min_p x the top probability (extension)."
    )
    logit_bias: dict[str, float] | None = pydantic.Field(
        default=None, description="Token id -> bias in [-100, 100] added to its logit."
    )

    @pydantic.field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return check_logit_bias(value)

    @pydantic.model_validator(mode="after")
    def _top_p_zero_is_greedy(self) -> SamplingFields:
        """OpenAI allows `top_p: 0` (keep only the likeliest token): that is greedy decoding, which
        every engine does at temperature 0, while an empty nucleus would break their samplers."""
        if getattr(self, "top_p", None) == 0:
            self.top_p = None
            self.temperature = 0.0
        return self
