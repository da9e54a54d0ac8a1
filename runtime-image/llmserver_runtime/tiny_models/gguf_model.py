"""The tiny Llama as a llama-arch GGUF, written with numpy, gguf and tokenizers only.

llama.cpp's own converter rejects our custom BPE (its pre-tokenizer hash is unknown), so we write
the file directly: GPT-2 style tokenizer metadata (our byte-level BPE pre-tokenizes exactly like
llama.cpp's `gpt-2`), the ChatML template, mean pooling (so embeddings are one vector per input),
and Q/K rows permuted the way llama.cpp's converter does for its rotary layout.
"""

from __future__ import annotations

import os
import pathlib

import gguf
import numpy as np

from llmserver_runtime.tiny_models import bpe, llama

FILE_NAME = "tiny-llama.gguf"
SMALL_FILE_NAME = "small-llama.gguf"

# HF per-layer tensor suffix -> GGUF per-layer tensor suffix.
_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotate-half row order -> llama.cpp's interleaved pairs (as convert_hf_to_gguf.py)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_tensors(shape: llama.LlamaShape, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF-named weights -> GGUF-named weights, Q/K permuted."""
    out = {gguf_name: weights[hf_name] for hf_name, gguf_name in _GLOBAL_TENSORS.items()}
    for layer in range(shape.num_hidden_layers):
        for hf_suffix, gguf_suffix in _LAYER_TENSORS.items():
            tensor = weights[f"model.layers.{layer}.{hf_suffix}"]
            if hf_suffix.startswith("self_attn.q_proj"):
                tensor = permute_rows(tensor, shape.num_attention_heads)
            elif hf_suffix.startswith("self_attn.k_proj"):
                tensor = permute_rows(tensor, shape.num_key_value_heads)
            out[f"blk.{layer}.{gguf_suffix}"] = np.ascontiguousarray(tensor, dtype=np.float32)
    return out


def _add_tokenizer(writer: gguf.GGUFWriter, tokenizer: object) -> None:
    tokens, merges = bpe.vocab_and_merges(tokenizer)  # type: ignore[arg-type]
    specials = set(bpe.SPECIAL_TOKENS)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    endoftext = bpe.special_id(tokenizer, bpe.ENDOFTEXT)  # type: ignore[arg-type]
    im_end = bpe.special_id(tokenizer, bpe.IM_END)  # type: ignore[arg-type]
    writer.add_bos_token_id(endoftext)
    writer.add_eos_token_id(im_end)
    writer.add_eot_token_id(im_end)
    writer.add_pad_token_id(endoftext)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_chat_template(bpe.CHATML_TEMPLATE)


def write(out_dir: pathlib.Path, seed: int, size: str = "tiny") -> pathlib.Path:
    """Writes `tiny-llama.gguf` or `small-llama.gguf` (same weights as `hf_causal.write` with the
    same seed and size)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = bpe.train()
    shape = llama.shape_of(size, tokenizer.get_vocab_size())
    path = out_dir / (FILE_NAME if size == "tiny" else SMALL_FILE_NAME)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"{size}-llama")
    writer.add_context_length(shape.max_position_embeddings)
    writer.add_embedding_length(shape.hidden_size)
    writer.add_block_count(shape.num_hidden_layers)
    writer.add_feed_forward_length(shape.intermediate_size)
    writer.add_head_count(shape.num_attention_heads)
    writer.add_head_count_kv(shape.num_key_value_heads)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_norm_eps)
    writer.add_vocab_size(shape.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    _add_tokenizer(writer, tokenizer)
    for name, tensor in gguf_tensors(shape, llama.random_weights(shape, seed)).items():
        writer.add_tensor(name, tensor)
    return finish(writer, path)


def finish(writer: gguf.GGUFWriter, path: pathlib.Path) -> pathlib.Path:
    """Writes the file `writer` describes and makes it readable by the runtime's user."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.chmod(path, 0o644)
    return path
