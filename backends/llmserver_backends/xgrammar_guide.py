"""Grammar-constrained decoding with xgrammar for the engines whose token loop is ours or takes
logits processors (transformers, mlx-lm).

Why xgrammar (and not llguidance): it is what vLLM uses by default, so transformers, mlx and vLLM
constrain the same JSON schemas the same way; it builds its token tables from any Hugging Face
tokenizer (`TokenizerInfo.from_huggingface`), and its matcher gives a per-step bitmask that any
array library can apply. JSON is compiled without free whitespace (`any_whitespace=False`): a
model cannot stall in endless blanks, so once the object closes the only token allowed is an end
token and generation stops with finish_reason "stop".

`Compiler` lives with the loaded model (xgrammar caches compiled grammars in it); a `Guide`
follows one generation: `allowed()` before sampling, `accept(token)` after.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmserver_backends import base, structured


class Compiler:
    """The model's xgrammar compiler; `stop_ids` are the tokens that end generation."""

    def __init__(self, hf_tokenizer: Any, vocab_size: int, stop_ids: Iterable[int]) -> None:
        import xgrammar

        info = xgrammar.TokenizerInfo.from_huggingface(
            hf_tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stop_ids)
        )
        self.vocab_size = vocab_size
        self._compiler = xgrammar.GrammarCompiler(info)

    def guide(self, constraint: structured.JsonConstraint | None) -> Guide | None:
        """A fresh Guide for one generation (None without a constraint); a schema xgrammar cannot
        compile is an UnsupportedParameter naming the request field it came from."""
        if constraint is None:
            return None
        try:
            if constraint.schema is None:
                compiled = self._compiler.compile_json_schema(structured.ANY_OBJECT, any_whitespace=False)
            else:
                compiled = self._compiler.compile_json_schema(constraint.schema, any_whitespace=False)
        except (RuntimeError, ValueError, TypeError) as error:
            raise base.UnsupportedParameter(constraint.param, f"this JSON schema cannot be enforced: {error}") from error
        return Guide(compiled, self.vocab_size)


class Guide:
    """One generation's grammar state."""

    def __init__(self, compiled: Any, vocab_size: int) -> None:
        import xgrammar

        self._matcher = xgrammar.GrammarMatcher(compiled)
        self._bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)
        self.vocab_size = vocab_size

    def allowed(self) -> Any:
        """A numpy bool array over the vocabulary: the tokens the grammar allows next (all of them
        once it accepted an end token: engines that compute a step ahead, as mlx-lm does, ask
        again after the end, and that step's token is never used)."""
        import numpy as np

        if self._matcher.is_terminated():
            return np.ones(self.vocab_size, dtype=bool)
        self._matcher.fill_next_token_bitmask(self._bitmask)
        bits = np.unpackbits(self._bitmask.numpy().view(np.uint8), bitorder="little")
        return bits[: self.vocab_size].astype(bool)

    def accept(self, token: int) -> None:
        """Advances the grammar past a sampled token (one it allowed)."""
        if not self._matcher.is_terminated() and not self._matcher.accept_token(token):
            raise base.BackendError(f"constrained decoding sampled token {token}, which its grammar refuses")

    def mask_torch(self, logits: Any) -> Any:
        """`logits` (1-D torch) with every token the grammar refuses at -inf."""
        import torch

        allowed = torch.from_numpy(self.allowed())
        width = logits.shape[-1]
        keep = torch.zeros(width, dtype=torch.bool)
        keep[: min(width, allowed.shape[0])] = allowed[:width]
        return torch.where(keep, logits, torch.tensor(float("-inf"), dtype=logits.dtype))

    def mask_mlx(self, logits: Any) -> Any:
        """`logits` (mlx, last axis the vocabulary) with refused tokens at -inf."""
        import mlx.core as mx
        import numpy as np

        width = logits.shape[-1]
        keep = np.zeros(width, dtype=bool)
        allowed = self.allowed()
        keep[: min(width, allowed.shape[0])] = allowed[:width]
        return mx.where(mx.array(keep), logits, mx.array(float("-inf"), dtype=logits.dtype))
