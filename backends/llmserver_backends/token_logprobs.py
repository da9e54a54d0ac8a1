"""Log probabilities from a row of logits, shared by the engines that hand us raw logits
(llama.cpp, transformers, mlx). numpy only: each engine converts its row first.

What OpenAI returns: the natural log of the model's probability of the chosen token and of the
k likeliest tokens at that position, with each token's text and UTF-8 bytes (a byte-level token
may carry part of a character, so `bytes` is the truth and `token` its lossy decoding). The
distribution is the model's own (before temperature, penalties or sampling filters), as vLLM
reports it by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmserver_backends import base


def log_softmax(logits: Any) -> Any:
    """log(softmax(logits)) of a 1-D numpy array, in float64 for stable small values."""
    import numpy as np

    row = np.asarray(logits, dtype=np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


def entry(logprobs: Any, token: int, k: int, token_bytes: Callable[[int], bytes]) -> base.TokenLogprob:
    """The TokenLogprob of `token` given its position's log probabilities, with `k` alternatives."""
    import numpy as np

    top: tuple[tuple[str, float, bytes], ...] = ()
    if k > 0:
        k = min(k, logprobs.shape[-1])
        best = np.argpartition(-logprobs, k - 1)[:k]
        best = best[np.argsort(-logprobs[best], kind="stable")]
        top = tuple(item(int(i), float(logprobs[i]), token_bytes) for i in best)
    text, value, raw = item(token, float(logprobs[token]), token_bytes)
    return base.TokenLogprob(text, value, raw, top)


def item(token: int, value: float, token_bytes: Callable[[int], bytes]) -> tuple[str, float, bytes]:
    """(text, logprob, bytes) of one token; -inf (a token masked out) is OpenAI's -9999."""
    raw = token_bytes(token)
    return raw.decode("utf-8", errors="replace"), max(value, -9999.0), raw


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (character -> byte): printable bytes stand for themselves,
    the others for 256 + n."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(char): byte for byte, char in zip(printable, chars)}


def hf_token_bytes(tokenizer: Any) -> Callable[[int], bytes]:
    """A token's UTF-8 bytes: byte-level BPE pieces map back through GPT-2's alphabet; other
    tokenizers' tokens are decoded (their bytes are then those of the decoded text)."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    alphabet = _byte_alphabet() if "ByteLevel" in type(decoder).__name__ else {}

    def token_bytes(token: int) -> bytes:
        piece = tokenizer.convert_ids_to_tokens(token)
        if piece and all(char in alphabet for char in piece):
            return bytes(alphabet[char] for char in piece)
        return tokenizer.decode([token], skip_special_tokens=False).encode()

    return token_bytes
