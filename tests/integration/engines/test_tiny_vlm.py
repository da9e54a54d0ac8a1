"""`tiny-model --kind hf-vlm`: the tiny LLaVA is a real LLaVA that transformers loads completely.

(mlx-vlm loading and serving it is test_mlx_vlm_serve.py.) Loading with transformers checks the
legacy weight names against transformers' own mapping: nothing missing, nothing unexpected.
"""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from llmserver_runtime.tiny_models import vlm

pytestmark = pytest.mark.timeout(300)


def test_transformers_loads_every_weight_and_sees_the_image(tiny_hf_vlm: str) -> None:
    model, info = transformers.LlavaForConditionalGeneration.from_pretrained(tiny_hf_vlm, output_loading_info=True)
    assert not info["missing_keys"]
    assert not info["unexpected_keys"]
    assert not info["mismatched_keys"]

    processor = transformers.AutoProcessor.from_pretrained(tiny_hf_vlm)
    image_id = processor.tokenizer.convert_tokens_to_ids(vlm.IMAGE_TOKEN)
    assert image_id == model.config.image_token_index
    assert processor.tokenizer.tokenize("a <image> b").count(vlm.IMAGE_TOKEN) == 1

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.count(vlm.IMAGE_TOKEN) == 1

    def greedy(pixels: np.ndarray) -> list[int]:
        inputs = processor(text=prompt, images=Image.fromarray(pixels), return_tensors="pt")
        assert int((inputs["input_ids"] == image_id).sum()) == vlm.ClipShape().num_patches
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        return out[0, inputs["input_ids"].shape[1] :].tolist()

    noise = (np.random.default_rng(0).random((30, 30, 3)) * 255).astype("uint8")
    assert greedy(noise) != greedy(np.zeros((30, 30, 3), dtype="uint8"))


def _digest(path: pathlib.Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_weights_are_deterministic_from_the_seed(tmp_path: pathlib.Path) -> None:
    first = vlm.write(tmp_path / "a", seed=3)
    again = vlm.write(tmp_path / "b", seed=3)
    other = vlm.write(tmp_path / "c", seed=4)
    assert _digest(first) == _digest(again) != _digest(other)
