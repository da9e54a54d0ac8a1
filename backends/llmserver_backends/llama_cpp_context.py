"""The llama context the llama-cpp batch scheduler decodes in, its slot count and its adapters.

`llama_cpp.Llama` loads the model, tokenizer and chat template, but its own context holds one
sequence. The generation context is made here from the same parameters with `n_seq_max` slots
and one unified KV cache of n_ctx cells that all slots share (llama-server's layout when it
chooses its slot count itself: memory does not grow with the slot count, and one request may
still use the whole context).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import llama_cpp
from llama_cpp import _internals

from llmserver_backends import base

# Context the Llama object's own (unused) context is created with: small, freed right away.
PROBE_N_CTX = 256


def default_parallel(n_gpu_layers: int, cpus: int) -> int:
    """Slots when `--parallel` is unset: 8 when layers run on a GPU (a GPU has compute to spare
    for more sequences per weight read), otherwise 4 (llama-server's own automatic count), or 8
    on CPUs with 16 cores or more. Slots share one KV cache, so more of them cost no memory."""
    if n_gpu_layers != 0:
        return 8
    return 8 if cpus >= 16 else 4


def batched_context(llm: llama_cpp.Llama, n_ctx: int, n_batch: int, n_slots: int) -> _internals.LlamaContext:
    """A context for `n_slots` sequences over `llm`'s model, with `llm`'s settings (threads, flash
    attention, KV types, rope...); `llm`'s own single-sequence context is freed first."""
    params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
    params.n_ctx = n_ctx
    params.n_batch = n_batch
    params.n_ubatch = min(n_batch, params.n_ubatch or n_batch)
    params.n_seq_max = n_slots
    params.kv_unified = True
    params.embeddings = False
    llm._ctx.close()  # the Llama's own context: not used for generation
    try:
        return _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    except ValueError as error:
        message = f"llama.cpp could not create a context of {n_ctx} tokens for {n_slots} slots"
        raise base.BackendError(message) from error


def load_adapters(llm: llama_cpp.Llama, adapters: Mapping[str, str]) -> dict[str, Any]:
    """GGUF LoRA adapters by name, loaded onto `llm`'s model (freed with it)."""
    loaded: dict[str, Any] = {}
    for name, given in adapters.items():
        path = adapter_file(name, given)
        adapter = llama_cpp.llama_adapter_lora_init(llm._model.model, str(path).encode("utf-8"))
        if not adapter:
            raise base.BackendError(f"adapter {name!r}: llama.cpp could not load a GGUF LoRA adapter from {path}")
        loaded[name] = adapter
    return loaded


def adapter_file(name: str, given: str) -> pathlib.Path:
    """The GGUF file of an adapter: the path as given, or the one GGUF in a directory (what a
    downloaded adapter repository is)."""
    path = pathlib.Path(given)
    if not path.is_dir():
        return path
    found = sorted(path.rglob("*.gguf"))
    if len(found) != 1:
        raise base.BackendError(f"adapter {name!r}: {path} holds {len(found)} GGUF files; expected one LoRA adapter")
    return found[0]
