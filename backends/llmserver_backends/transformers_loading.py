"""How the transformers backend reads a model directory: capabilities, context, load arguments.

Kept apart from the backend class so the decisions (which Auto class, which dtype, which
quantisation) are plain functions over a config, testable without loading weights.
"""

from __future__ import annotations

import enum
import json
import pathlib
from typing import Any

import llmserver_api
from llmserver_backends import base

_DTYPES = ("auto", "float32", "float16", "bfloat16")


class Head(str, enum.Enum):
    """Which Auto class loads the model."""

    CAUSAL_LM = "causal-lm"  # AutoModelForCausalLM: generation (and optional hidden-state embeddings)
    ENCODER = "encoder"  # AutoModel: pooled embeddings
    SEQUENCE_CLASSIFICATION = "sequence-classification"  # cross-encoder rerank


def architectures(config: Any) -> list[str]:
    """The `architectures` list of an HF config (empty when the repo omits it)."""
    return list(getattr(config, "architectures", None) or [])


def is_sentence_transformer(model_path: str) -> bool:
    """True for the sentence-transformers layout (modules.json next to config.json)."""
    return (pathlib.Path(model_path) / "modules.json").is_file()


def detect_capabilities(config: Any, model_path: str) -> frozenset[llmserver_api.Capability]:
    """What the model can do, from its declared architecture (never by trying)."""
    archs = architectures(config)
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return frozenset({llmserver_api.Capability.RERANK})
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return frozenset({llmserver_api.Capability.TEXT_GENERATION})
    if is_sentence_transformer(model_path) or any(a.endswith("Model") for a in archs):
        return frozenset({llmserver_api.Capability.EMBEDDINGS})
    raise base.BackendError(
        f"the transformers backend cannot tell what architectures {archs or '(none declared)'} do; "
        "set the capabilities explicitly (TextGeneration, Embeddings or Rerank)"
    )


def choose_head(capabilities: frozenset[llmserver_api.Capability], config: Any) -> Head:
    """The Auto class for the wanted capabilities; refuses combinations this backend can't serve."""
    if llmserver_api.Capability.VISION in capabilities:
        raise base.BackendError("the transformers backend does not support Vision (use mlx-vlm or vllm)")
    if llmserver_api.Capability.RERANK in capabilities:
        if capabilities != {llmserver_api.Capability.RERANK}:
            raise base.BackendError("a Rerank model (a cross-encoder) cannot also serve other capabilities")
        return Head.SEQUENCE_CLASSIFICATION
    if llmserver_api.Capability.TEXT_GENERATION in capabilities:
        return Head.CAUSAL_LM  # Embeddings alongside: mean-pooled last hidden states
    if not capabilities:
        raise base.BackendError("no capabilities requested")
    archs = architectures(config)
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return Head.CAUSAL_LM
    return Head.ENCODER


def context_length(config: Any, tokenizer_max: int | None) -> int | None:
    """Positions the model was built for, capped by the tokenizer's limit when it states a real one."""
    candidates = [
        getattr(config, name, None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
    ]
    text_config = getattr(config, "text_config", None)
    if text_config is not None:
        candidates.append(getattr(text_config, "max_position_embeddings", None))
    from_config = next((int(c) for c in candidates if isinstance(c, int) and c > 0), None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    real_tokenizer_max = tokenizer_max if tokenizer_max and tokenizer_max < 10_000_000 else None
    values = [v for v in (from_config, real_tokenizer_max) if v]
    return min(values) if values else None


def sentence_transformers_settings(model_path: str) -> tuple[str, int | None]:
    """(pooling mode: mean|cls|max|lasttoken, max_seq_length) from a sentence-transformers layout."""
    root = pathlib.Path(model_path)
    mode, max_len = "mean", None
    modules_path = root / "modules.json"
    if modules_path.is_file():
        for module in json.loads(modules_path.read_text()):
            if module.get("type", "").endswith("Pooling"):
                pooling = json.loads((root / module.get("path", "") / "config.json").read_text())
                for name in ("cls_token", "max_tokens", "lasttoken", "mean_tokens"):
                    if pooling.get(f"pooling_mode_{name}"):
                        mode = {"cls_token": "cls", "max_tokens": "max", "lasttoken": "lasttoken"}.get(name, "mean")
                        break
    bert_config = root / "sentence_bert_config.json"
    if bert_config.is_file():
        max_len = json.loads(bert_config.read_text()).get("max_seq_length")
    return mode, max_len


def model_kwargs(options: dict[str, Any], trust_remote_code: bool, cuda: bool) -> dict[str, Any]:
    """`from_pretrained` arguments: dtype, device, bitsandbytes quantisation, remote-code opt-in."""
    import torch
    import transformers

    dtype_name = options.get("dtype") or ("auto" if cuda else "float32")  # half precision is slow on CPU
    if dtype_name not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype_name!r}")
    dtype = dtype_name if dtype_name == "auto" else getattr(torch, dtype_name)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code, "device_map": "cuda" if cuda else "cpu"}
    if options.get("load_in_4bit") and options.get("load_in_8bit"):
        raise ValueError("load_in_4bit and load_in_8bit are mutually exclusive")
    if options.get("load_in_4bit"):
        if dtype == "auto":
            compute = torch.bfloat16 if cuda else torch.float32
        else:
            compute = dtype
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=compute, bnb_4bit_quant_type="nf4"
        )
    elif options.get("load_in_8bit"):
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
    return kwargs
