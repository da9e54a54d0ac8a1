"""Shape and random weights of the tiny Llama, in Hugging Face tensor names, with numpy only.

The HF directory and the GGUF are written from the same arrays, so the two engines can be checked
against each other. head_dim is 64 because vLLM's CPU attention refuses smaller heads; one KV head
exercises grouped-query attention (and the GGUF's K permutation with n_head_kv != n_head).
Size `small` (~51M parameters) is for throughput benches: a decode step of `tiny` takes ~70 µs,
so it measures Python overhead; `small`'s matrix work dominates a step on CPU, as a real model's.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class LlamaShape:
    """Hyperparameters of the tiny Llama."""

    vocab_size: int
    hidden_size: int = 128
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    num_hidden_layers: int = 2
    intermediate_size: int = 256
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def parameter_count(self) -> int:
        """Number of weights `random_weights` writes for this shape."""
        hidden, kv_dim = self.hidden_size, self.num_key_value_heads * self.head_dim
        per_layer = 2 * hidden * hidden + 2 * kv_dim * hidden + 3 * hidden * self.intermediate_size + 2 * hidden
        return 2 * self.vocab_size * hidden + self.num_hidden_layers * per_layer + hidden


# size name -> hyperparameters other than the vocabulary (head_dim stays 64 in both).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {},
    "small": {
        "hidden_size": 768,
        "num_attention_heads": 12,
        "num_key_value_heads": 4,
        "num_hidden_layers": 8,
        "intermediate_size": 2048,
    },
}


def shape_of(size: str, vocab_size: int) -> LlamaShape:
    """The shape called `size` ("tiny" or "small") with the tokenizer's vocabulary."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
    return LlamaShape(vocab_size=vocab_size, **SIZES[size])


# Larger than HF's 0.02 initialiser so logits are peaked: greedy decoding then does not hinge on
# float rounding, and two engines computing the same model agree token for token.
_STD = 0.3


def random_weights(shape: LlamaShape, seed: int) -> dict[str, np.ndarray]:
    """float32 weights keyed by HF LlamaForCausalLM names, deterministic from `seed`."""
    rng = np.random.default_rng(seed)
    hidden, ffn, head_dim = shape.hidden_size, shape.intermediate_size, shape.head_dim
    kv_dim = shape.num_key_value_heads * head_dim

    def matrix(rows: int, cols: int) -> np.ndarray:
        # Scaled by fan-in so activations keep a sane size through the layers.
        return (rng.standard_normal((rows, cols), dtype=np.float32) * (_STD / np.sqrt(cols / 16))).astype(
            np.float32
        )

    def norm(size: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(size, dtype=np.float32)).astype(np.float32)

    weights: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": rng.standard_normal((shape.vocab_size, hidden), dtype=np.float32),
    }
    for layer in range(shape.num_hidden_layers):
        prefix = f"model.layers.{layer}."
        weights[prefix + "input_layernorm.weight"] = norm(hidden)
        weights[prefix + "self_attn.q_proj.weight"] = matrix(hidden, hidden)
        weights[prefix + "self_attn.k_proj.weight"] = matrix(kv_dim, hidden)
        weights[prefix + "self_attn.v_proj.weight"] = matrix(kv_dim, hidden)
        weights[prefix + "self_attn.o_proj.weight"] = matrix(hidden, hidden)
        weights[prefix + "post_attention_layernorm.weight"] = norm(hidden)
        weights[prefix + "mlp.gate_proj.weight"] = matrix(ffn, hidden)
        weights[prefix + "mlp.up_proj.weight"] = matrix(ffn, hidden)
        weights[prefix + "mlp.down_proj.weight"] = matrix(hidden, ffn)
    weights["model.norm.weight"] = norm(hidden)
    weights["lm_head.weight"] = matrix(shape.vocab_size, hidden)
    return weights
