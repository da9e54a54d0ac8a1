"""The tiny Llama as a Hugging Face directory (transformers, vLLM, mlx-lm all load it).

Weights come from numpy (`llama.random_weights`), so no torch is needed; transformers is used only
to write config and tokenizer files in the exact layout its installed version reads back.
"""

from __future__ import annotations

import json
import os
import pathlib

import safetensors.numpy
import transformers

from llmserver_runtime.tiny_models import bpe, llama


def shape_for(tokenizer_vocab_size: int, size: str = "tiny") -> llama.LlamaShape:
    """The model shape that goes with the trained tokenizer."""
    return llama.shape_of(size, tokenizer_vocab_size)


def write_tokenizer(out_dir: pathlib.Path) -> transformers.PreTrainedTokenizerFast:
    """Saves the BPE tokenizer with ChatML specials and template; returns it."""
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe.train(),
        bos_token=bpe.ENDOFTEXT,
        eos_token=bpe.IM_END,
        pad_token=bpe.ENDOFTEXT,
        unk_token=None,
        additional_special_tokens=[bpe.IM_START, bpe.IM_END],
        model_max_length=llama.LlamaShape(vocab_size=0).max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = bpe.CHATML_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    _make_portable(out_dir / "tokenizer_config.json")
    return tokenizer


def _make_portable(config_path: pathlib.Path) -> None:
    """Lets older transformers (4.x, e.g. mlx-lm on a Mac) read the tokenizer too: they know the
    class as PreTrainedTokenizerFast and look for the template inside tokenizer_config.json."""
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["chat_template"] = bpe.CHATML_TEMPLATE
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def llama_config(shape: llama.LlamaShape, tokenizer: transformers.PreTrainedTokenizerFast) -> transformers.LlamaConfig:
    """The transformers config for `shape`, with the tokenizer's special ids."""
    return transformers.LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=shape.max_position_embeddings,
        rms_norm_eps=shape.rms_norm_eps,
        rope_theta=shape.rope_theta,
        bos_token_id=tokenizer.convert_tokens_to_ids(bpe.ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(bpe.IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(bpe.ENDOFTEXT),
        tie_word_embeddings=False,
        dtype="float32",
        architectures=["LlamaForCausalLM"],
    )


def write(out_dir: pathlib.Path, seed: int, size: str = "tiny") -> pathlib.Path:
    """Writes config, generation config, tokenizer and safetensors; returns the directory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(out_dir)
    shape = shape_for(len(tokenizer), size)
    config = llama_config(shape, tokenizer)
    config.save_pretrained(str(out_dir))
    transformers.GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=[config.eos_token_id, config.pad_token_id],
        pad_token_id=config.pad_token_id,
    ).save_pretrained(str(out_dir))
    weights = llama.random_weights(shape, seed)
    weights_path = out_dir / "model.safetensors"
    safetensors.numpy.save_file(weights, str(weights_path), metadata={"format": "pt"})
    os.chmod(weights_path, 0o644)  # safetensors creates it 0600; other users (pods) read it
    return out_dir
