"""Our request types in the shapes vLLM's renderer and sampler take; pure, no vLLM import.

vLLM renders chat with the model's own template and multimodal processor when it gets OpenAI-style
messages, so images go back into `image_url` data URLs rather than being preprocessed here: that
keeps every vision model vLLM supports working without per-model code.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmserver_backends import base, token_logprobs


def openai_messages(messages: list[base.ChatMessage]) -> list[dict[str, Any]]:
    """Chat messages as OpenAI message dicts; images (if any) first, then the text, per message."""
    out: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role}
        if message.images:
            parts: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": data_url(image)}} for image in message.images
            ]
            if message.content:
                parts.append({"type": "text", "text": message.content})
            entry["content"] = parts
        else:
            entry["content"] = message.content
        if message.name:
            entry["name"] = message.name
        if message.tool_calls:  # OpenAI's shape; vLLM hands templates the arguments as objects
            entry["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
        if message.tool_call_id is not None:
            entry["tool_call_id"] = message.tool_call_id
        out.append(entry)
    return out


def data_url(image: base.ImagePart) -> str:
    """The image as a base64 data URL (what vLLM's media loader decodes without any network)."""
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def completion_budget(prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> int:
    """Tokens the completion may use; raises ContextLengthExceeded like OpenAI does.

    Without max_tokens the completion may fill the rest of the context (vLLM's OpenAI server does
    the same), instead of vLLM's library default of 16 tokens.
    """
    if prompt_tokens >= max_model_len:
        raise base.ContextLengthExceeded(
            f"This model's maximum context length is {max_model_len} tokens, but the prompt has {prompt_tokens} tokens."
        )
    if max_tokens is None:
        return max_model_len - prompt_tokens
    if prompt_tokens + max_tokens > max_model_len:
        raise base.ContextLengthExceeded(
            f"This model's maximum context length is {max_model_len} tokens, but you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} for the "
            "completion). Please reduce the prompt or max_tokens."
        )
    return max_tokens


def sampling_kwargs(params: base.SamplingParams, max_tokens: int) -> dict[str, Any]:
    """Keyword arguments for vllm.SamplingParams (streamed as deltas by the caller)."""
    kwargs: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "stop": list(params.stop),
    }
    if params.seed is not None:
        kwargs["seed"] = params.seed
    optional = {
        "presence_penalty": (params.presence_penalty, 0.0),
        "frequency_penalty": (params.frequency_penalty, 0.0),
        "repetition_penalty": (params.repetition_penalty, 1.0),
        "top_k": (params.top_k, 0),
        "min_p": (params.min_p, 0.0),
    }
    kwargs.update({name: value for name, (value, off) in optional.items() if value != off})
    if params.logit_bias:
        kwargs["logit_bias"] = dict(params.logit_bias)
    if params.logprobs is not None:
        kwargs["logprobs"] = params.logprobs
    return kwargs


def logprob_entries(
    token_ids: Sequence[int], positions: Sequence[Mapping[int, Any]], k: int, token_bytes: Callable[[int], bytes]
) -> tuple[base.TokenLogprob, ...]:
    """vLLM's per-position {token id: Logprob(logprob, rank, ...)} as our TokenLogprobs: the
    sampled token plus the k best by rank (vLLM adds the sampled one when it is not among them)."""
    entries: list[base.TokenLogprob] = []
    for token, position in zip(token_ids, positions):
        ranked = sorted(((lp.rank, tid, lp.logprob) for tid, lp in position.items()), key=lambda item: item[0])
        top = tuple(token_logprobs.item(tid, value, token_bytes) for _, tid, value in ranked[:k])
        text, value, raw = token_logprobs.item(token, position[token].logprob, token_bytes)
        entries.append(base.TokenLogprob(text, value, raw, top))
    return tuple(entries)

