"""The mlx-vlm backend: vision-language models with mlx-vlm (Metal on Apple Silicon; CPU elsewhere).

Images arrive decoded from their data URLs (base.ImagePart). The prompt comes from mlx-vlm's own
chat formatting (it knows where each model family wants its image tokens); the inputs are then
prepared here by calling the model's processor with only text and images, and handed to
mlx-vlm's generator ready-made. Why not let mlx-vlm prepare them: its input preparation passes
text options (`padding`, `padding_side`) that its LLaVA processor forwards to the image
processor, which transformers 5 rejects. Calling the processor without them avoids that without
patching the library, and works for every processor that takes `text=` and `images=`.

Like mlx, all MLX work runs on one worker thread; the loop is mlx_worker's.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import llmserver_api
from llmserver_backends import base, mlx_generation, mlx_worker

_PREPARED = ("input_ids", "pixel_values", "attention_mask")
Inputs = tuple[str, dict[str, Any]]  # the prompt text and the processor's outputs as MLX arrays


class MlxVlmBackend(mlx_worker.MlxWorkerBackend[Inputs]):
    """Serves one vision-language model; options: max_kv_size, max_tokens (default length)."""

    kind = "mlx-vlm"
    supported_parameters = frozenset(
        {
            "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "top_k", "min_p", "logit_bias",
            "logprobs", "top_logprobs",
        }
    )  # fmt: skip
    engine_name = "mlx-vlm"
    default_capabilities = frozenset({llmserver_api.Capability.TEXT_GENERATION, llmserver_api.Capability.VISION})
    managed = frozenset({
        "input_ids", "model", "pixel_values", "mask", "max_tokens", "temperature", "top_p", "seed",
        "max_kv_size", "prompt_cache", "sampler", "min_p", "top_k", "logit_bias", "logits_processors",
        "repetition_penalty", "repetition_context_size", "presence_penalty", "presence_context_size",
        "frequency_penalty", "frequency_context_size",
    })  # fmt: skip

    def __init__(self, config: base.BackendConfig) -> None:
        if config.adapters:  # refused, never silently served by the base model
            raise ValueError("the mlx-vlm backend does not serve LoRA adapters (--adapter); use mlx or vllm")
        super().__init__(config)

    def load_engine(self) -> tuple[Callable[..., Any], Callable[..., tuple[Any, Any]]]:
        import mlx_vlm
        from mlx_vlm.generate import ar

        return ar.generate_step, mlx_vlm.load

    def _tokenizer(self) -> Any:
        processor = self._loaded_engine()
        return getattr(processor, "tokenizer", processor)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer().encode(text, add_special_tokens=False))

    def chat(self, messages: list[base.ChatMessage], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        def inputs() -> Inputs:
            from mlx_vlm import prompt_utils

            images = [_pil_image(image) for message in messages for image in message.images]
            conversation = [_message(m) for m in messages]
            processor = self._loaded_engine()
            text = mlx_worker.chat_template(
                lambda: prompt_utils.apply_chat_template(
                    processor, self._model.config, conversation, num_images=len(images)
                )
            )
            return text, self._prepare(text, images)

        return self._stream(inputs, params)

    def complete(self, prompt: str, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        return self._stream(lambda: (prompt, self._prepare(prompt, [])), params)

    def prompt_tokens(self, prepared: Inputs) -> int:
        return int(prepared[1]["input_ids"].size)

    def default_max_tokens(self) -> int | None:
        return self.config.options.get("max_tokens")

    def generate(self, prepared: Inputs, max_tokens: int, params: base.SamplingParams) -> Iterator[Any]:
        import mlx_vlm

        text, inputs = prepared
        extra = {key: value for key, value in inputs.items() if key not in _PREPARED}
        return mlx_vlm.stream_generate(
            self._model,
            self._loaded_engine(),
            text,
            input_ids=inputs["input_ids"],
            pixel_values=inputs.get("pixel_values"),
            mask=inputs.get("attention_mask"),
            max_tokens=max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            min_p=params.min_p,
            top_k=params.top_k or None,
            **mlx_generation.sampling_kwargs(params, self.context_length),
            seed=None if params.seed is None else params.seed & 0xFFFFFFFFFFFFFFFF,  # mlx: unsigned 64-bit
            max_kv_size=self.config.options.get("max_kv_size"),
            **self._engine_kwargs,
            **extra,
        )

    def _prepare(self, text: str, images: list[Any]) -> dict[str, Any]:
        """Token ids (image tokens expanded by the processor), pixels and mask as MLX arrays."""
        import mlx.core as mx
        import numpy as np

        try:
            # Only text and images: no text options for the processor to misroute.
            prepared = self._loaded_engine()(text=[text], images=images or None)
        except (ValueError, TypeError) as error:
            raise base.UnsupportedRequest(f"the model's processor rejected the input: {error}") from error
        return {
            key: value if isinstance(value, mx.array) else mx.array(np.asarray(value))
            for key, value in dict(prepared).items()
            if value is not None
        }


def _message(message: base.ChatMessage) -> dict[str, Any]:
    """A chat message as mlx-vlm's formatter takes it: image parts first, then the text."""
    if not message.images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "image"} for _ in message.images]
    parts.append({"type": "text", "text": message.content})
    return {"role": message.role, "content": parts}


def _pil_image(image: base.ImagePart) -> Any:
    """Decodes an image part; undecodable bytes are the client's error (400), not ours."""
    from PIL import Image, UnidentifiedImageError

    try:
        decoded = Image.open(io.BytesIO(image.data))
        decoded.load()
    except (UnidentifiedImageError, OSError) as error:
        raise base.UnsupportedRequest(f"an image could not be decoded ({image.mime_type}): {error}") from error
    return decoded.convert("RGB")
