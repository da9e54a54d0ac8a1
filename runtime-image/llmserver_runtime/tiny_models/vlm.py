"""The tiny LLaVA (`tiny-model --kind hf-vlm`): a CLIP vision tower in front of the tiny Llama.

Loadable by mlx-vlm (and by transformers' LlavaForConditionalGeneration). Weights are numpy
only, in the legacy LLaVA layout (`vision_tower.vision_model.*`, `language_model.model.*`,
`language_model.lm_head.*`, `multi_modal_projector.*`): mlx-vlm reads only those names, and
transformers maps them to its own. Images are 28 px with 14 px patches, so one image becomes
four `<image>` tokens (the CLS position is dropped by the "default" feature strategy). The text
model and tokenizer are the hf-causal ones plus the `<image>` special token.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import safetensors.numpy
import transformers

from llmserver_runtime.tiny_models import bpe, hf_causal, llama

IMAGE_TOKEN = "<image>"
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's normalisation constants
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)

# ChatML that writes one `<image>` line per image part (OpenAI `image_url` or mlx-vlm's `image`).
VLM_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ('image', 'image_url') %}{{ '<image>\\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclasses.dataclass(frozen=True)
class ClipShape:
    """Hyperparameters of the tiny CLIP vision tower."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    image_size: int = 28
    patch_size: int = 14
    projection_dim: int = 64

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def write_tokenizer(out_dir: pathlib.Path) -> transformers.PreTrainedTokenizerFast:
    """The hf-causal tokenizer plus `<image>` as a special token, with the VLM chat template."""
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe.train(),
        bos_token=bpe.ENDOFTEXT,
        eos_token=bpe.IM_END,
        pad_token=bpe.ENDOFTEXT,
        unk_token=None,
        model_max_length=llama.LlamaShape(vocab_size=0).max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [bpe.IM_START, bpe.IM_END, IMAGE_TOKEN]})
    tokenizer.chat_template = VLM_CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def llava_config(text: transformers.LlamaConfig, clip: ClipShape, image_token_index: int) -> transformers.LlavaConfig:
    """The LLaVA config joining the tiny Llama and the tiny CLIP tower."""
    vision = transformers.CLIPVisionConfig(
        hidden_size=clip.hidden_size,
        intermediate_size=clip.intermediate_size,
        num_hidden_layers=clip.num_hidden_layers,
        num_attention_heads=clip.num_attention_heads,
        image_size=clip.image_size,
        patch_size=clip.patch_size,
        projection_dim=clip.projection_dim,
    )
    return transformers.LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_index,
        image_seq_length=clip.num_patches,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
        architectures=["LlavaForConditionalGeneration"],
    )


def vision_weights(clip: ClipShape, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float32 CLIP vision weights under HF CLIPVisionModel names (without a prefix)."""
    hidden, ffn, patch = clip.hidden_size, clip.intermediate_size, clip.patch_size

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(cols)).astype(np.float32)

    def vector(size: int, scale: float = 0.02) -> np.ndarray:
        return (scale * rng.standard_normal(size, dtype=np.float32)).astype(np.float32)

    weights: dict[str, np.ndarray] = {
        "embeddings.class_embedding": vector(hidden, 1.0),
        "embeddings.patch_embedding.weight": (
            rng.standard_normal((hidden, 3, patch, patch), dtype=np.float32) / np.sqrt(3 * patch * patch)
        ).astype(np.float32),
        "embeddings.position_embedding.weight": matrix(clip.num_patches + 1, hidden),
        "pre_layrnorm.weight": np.ones(hidden, dtype=np.float32),
        "pre_layrnorm.bias": np.zeros(hidden, dtype=np.float32),
        "post_layernorm.weight": np.ones(hidden, dtype=np.float32),
        "post_layernorm.bias": np.zeros(hidden, dtype=np.float32),
    }
    for layer in range(clip.num_hidden_layers):
        prefix = f"encoder.layers.{layer}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            weights[prefix + f"self_attn.{proj}.weight"] = matrix(hidden, hidden)
            weights[prefix + f"self_attn.{proj}.bias"] = vector(hidden)
        for norm in ("layer_norm1", "layer_norm2"):
            weights[prefix + f"{norm}.weight"] = np.ones(hidden, dtype=np.float32)
            weights[prefix + f"{norm}.bias"] = np.zeros(hidden, dtype=np.float32)
        weights[prefix + "mlp.fc1.weight"] = matrix(ffn, hidden)
        weights[prefix + "mlp.fc1.bias"] = vector(ffn)
        weights[prefix + "mlp.fc2.weight"] = matrix(hidden, ffn)
        weights[prefix + "mlp.fc2.bias"] = vector(hidden)
    return weights


def llava_weights(text_shape: llama.LlamaShape, clip: ClipShape, seed: int) -> dict[str, np.ndarray]:
    """All weights under the legacy LLaVA names; the text part equals the hf-causal model's."""
    weights = {f"language_model.{name}": array for name, array in llama.random_weights(text_shape, seed).items()}
    rng = np.random.default_rng(seed + 1)
    weights.update({f"vision_tower.vision_model.{name}": a for name, a in vision_weights(clip, rng).items()})
    text_hidden = text_shape.hidden_size
    weights["multi_modal_projector.linear_1.weight"] = (
        rng.standard_normal((text_hidden, clip.hidden_size), dtype=np.float32) / np.sqrt(clip.hidden_size)
    ).astype(np.float32)
    weights["multi_modal_projector.linear_1.bias"] = np.zeros(text_hidden, dtype=np.float32)
    weights["multi_modal_projector.linear_2.weight"] = (
        rng.standard_normal((text_hidden, text_hidden), dtype=np.float32) / np.sqrt(text_hidden)
    ).astype(np.float32)
    weights["multi_modal_projector.linear_2.bias"] = np.zeros(text_hidden, dtype=np.float32)
    return weights


def write_processor(out_dir: pathlib.Path, tokenizer: transformers.PreTrainedTokenizerFast, clip: ClipShape) -> None:
    """Image processor (CLIP, 28 px) and LLaVA processor settings, as AutoProcessor reads them."""
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": clip.image_size},
        crop_size={"height": clip.image_size, "width": clip.image_size},
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )
    processor = transformers.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=clip.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS position
        image_token=IMAGE_TOKEN,
        chat_template=VLM_CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(out_dir))


def write(out_dir: pathlib.Path, seed: int) -> pathlib.Path:
    """Writes config, tokenizer, processor and safetensors; returns the directory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(out_dir)
    text_shape = hf_causal.shape_for(len(tokenizer))
    text_config = hf_causal.llama_config(text_shape, tokenizer)
    clip = ClipShape()
    image_token_index = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = llava_config(text_config, clip, image_token_index)
    config.save_pretrained(str(out_dir))
    # mlx-vlm takes the stop ids from the top-level config.
    config_path = out_dir / "config.json"
    data = json.loads(config_path.read_text())
    data["eos_token_id"] = text_config.eos_token_id
    config_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    transformers.GenerationConfig(
        bos_token_id=text_config.bos_token_id,
        eos_token_id=[text_config.eos_token_id, text_config.pad_token_id],
        pad_token_id=text_config.pad_token_id,
    ).save_pretrained(str(out_dir))
    write_processor(out_dir, tokenizer, clip)
    weights = llava_weights(text_shape, clip, seed)
    safetensors.numpy.save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir
