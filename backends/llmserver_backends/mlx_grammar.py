"""Structured outputs on mlx-lm: an xgrammar guide as one of mlx-lm's logits processors.

mlx-lm calls each processor with every token so far (prompt included) and the next-token logits;
the processor advances the grammar past the token sampled last time, then masks what the grammar
refuses. It runs last, after the penalty processors, so nothing un-masks a refused token.
"""

from __future__ import annotations

from typing import Any

from llmserver_backends import xgrammar_guide


class GrammarProcessor:
    """mlx-lm logits processor for one generation."""

    def __init__(self, guide: xgrammar_guide.Guide) -> None:
        self.guide = guide
        self._seen: int | None = None

    def __call__(self, tokens: Any, logits: Any) -> Any:
        count = int(tokens.size) if hasattr(tokens, "size") else len(tokens)
        if self._seen is not None and count > self._seen:
            self.guide.accept(int(tokens[-1].item()))
        self._seen = count
        return self.guide.mask_mlx(logits)


def compiler(model: Any, tokenizer: Any) -> xgrammar_guide.Compiler:
    """The xgrammar compiler for an mlx-lm model and its TokenizerWrapper (the HF tokenizer
    inside it gives xgrammar the vocabulary; its eos ids end generation)."""
    hf_tokenizer = getattr(tokenizer, "_tokenizer", tokenizer)
    args = getattr(model, "args", None)
    vocab = int(getattr(args, "vocab_size", 0) or len(hf_tokenizer))
    stop_ids = set(getattr(tokenizer, "eos_token_ids", None) or [hf_tokenizer.eos_token_id])
    return xgrammar_guide.Compiler(hf_tokenizer, vocab, stop_ids)
