"""The raw anchor of bench/runtime.py: llama.cpp's decode loop in-process, with nothing else.

`Llama.generate` is not a floor: its Python bookkeeping (batch filling, input-id arrays, KV
trimming, its sampler wrapper) cost ~150 µs per token on the tiny GGUF, more than our whole
server adds, so an anchor built on it let our per-token overhead come out negative. This loop
does only what any server must: decode one token, sample it with the same llama.cpp sampler
chain our backend builds for greedy requests (penalties at 1, then greedy), stop at an end token,
and turn the token into bytes (`Llama.detokenize`), asking llama.cpp once per token id for its bytes
and end flag, as our backend does (llama_cpp_slots.TokenTable). Like our backend's freed slot, it
keeps the last request's cells and skips the prompt tokens they share with the next request.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp

# Our backend's penalty window (llama_cpp_slots.PENALTY_LAST_N); the penalties are 1 (a no-op).
PENALTY_LAST_N = 64


class RawLoop:
    """Greedy generation on `llm`'s own single-sequence context, token by token, counted."""

    def __init__(self, llm: Any, max_tokens: int) -> None:
        self.llm, self.max_tokens = llm, max_tokens
        self.ctx = llm._ctx.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.pieces: dict[int, bytes] = {}
        self.ends: dict[int, bool] = {}
        self.cached: list[int] = []  # the tokens whose cells the context holds

    def _chain(self) -> Any:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        penalties = llama_cpp.llama_sampler_init_penalties(self.llm.n_vocab(), PENALTY_LAST_N, 1.0, 0.0, 0.0)
        llama_cpp.llama_sampler_chain_add(chain, penalties)
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain

    def generate(self, prompt: str) -> tuple[int, str]:
        """(tokens generated, their text) for `prompt`."""
        llm, ctx = self.llm, self.ctx
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        reuse = 0
        for cached, token in zip(self.cached, tokens, strict=False):
            if cached != token:
                break
            reuse += 1
        reuse = min(reuse, len(tokens) - 1)  # at least one token is decoded for its logits
        llama_cpp.llama_memory_seq_rm(self.memory, 0, reuse, -1)
        self.cached = list(tokens)
        chain = self._chain()
        pieces: list[bytes] = []
        try:
            rest = tokens[reuse:]
            ids = (llama_cpp.llama_token * len(rest))(*rest)
            if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(ids, len(rest))) != 0:
                raise RuntimeError("llama_decode failed on the prompt")
            one = (llama_cpp.llama_token * 1)()
            while len(pieces) < self.max_tokens:
                token = llama_cpp.llama_sampler_sample(chain, ctx, -1)
                end = self.ends.get(token)
                if end is None:
                    end = self.ends[token] = bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))
                if end:
                    break
                piece = self.pieces.get(token)
                if piece is None:
                    piece = self.pieces[token] = llm.detokenize([token])
                pieces.append(piece)
                if len(pieces) == self.max_tokens:
                    break
                one[0] = token
                self.cached.append(token)
                if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(ctypes.cast(one, ctypes.POINTER(
                        llama_cpp.llama_token)), 1)) != 0:
                    raise RuntimeError("llama_decode failed")
        finally:
            llama_cpp.llama_sampler_free(chain)
        return len(pieces), b"".join(pieces).decode("utf-8", errors="replace")
