"""The mlx-vlm backend: vision-language models with mlx-vlm (Metal on Apple Silicon; CPU elsewhere).

Images arrive decoded from their data URLs (base.ImagePart). The prompt comes from mlx-vlm's own
chat formatting (it knows where each model family wants its image tokens); the inputs are then
prepared here by calling the model's processor with only text and images, and handed to
mlx-vlm's generator ready-made. Why not let mlx-vlm prepare them: its input preparation passes
text options (`padding`, `padding_side`) that its LLaVA processor forwards to the image
processor, which transformers 5 rejects. Calling the processor without them avoids that without
patching the library, and works for every processor that takes `text=` and `images=`.

Like mlx, all MLX work runs on one worker thread (`threads`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from llmserver_backends import base, mlx_generation, threads

log = logging.getLogger(__name__)

_PREPARED = ("input_ids", "pixel_values", "attention_mask")
# generate_step arguments this backend sets itself (extraArgs may set the others).
_MANAGED = frozenset({
    "input_ids", "model", "pixel_values", "mask", "max_tokens", "temperature", "top_p", "seed",
    "max_kv_size", "prompt_cache", "sampler",
})  # fmt: skip


class MlxVlmBackend(base.ModelBackend):
    """Serves one vision-language model; options: max_kv_size, max_tokens (default length)."""

    kind = "mlx-vlm"

    def __init__(self, config: base.BackendConfig) -> None:
        super().__init__(config)
        self._worker = threads.single_worker("mlx-vlm")
        self._model: Any = None
        self._processor: Any = None
        self._context = mlx_generation.context_length(config.model_path)
        self._engine_kwargs: dict[str, Any] = {}

    @property
    def capabilities(self) -> frozenset[base.Capability]:
        if self.config.capabilities is not None:
            return self.config.capabilities
        return frozenset({base.Capability.TEXT_GENERATION, base.Capability.VISION})

    @property
    def context_length(self) -> int | None:
        return self._context

    async def load(self) -> None:
        self._model, self._processor = await threads.run(self._worker, self._load)

    def _load(self) -> tuple[Any, Any]:
        import mlx_vlm
        from mlx_vlm.generate import ar

        self._engine_kwargs = mlx_generation.engine_kwargs(self.config.extra_args, ar.generate_step, _MANAGED)
        log.info("loading %s with mlx-vlm", self.config.model_path)
        # Passed explicitly: with no keyword arguments mlx-vlm loads configs with remote code on.
        return mlx_vlm.load(self.config.model_path, trust_remote_code=self.config.trust_remote_code)

    async def unload(self) -> None:
        await threads.run(self._worker, self._release)

    def _release(self) -> None:
        import mlx.core as mx

        self._model = self._processor = None
        mx.clear_cache()

    def _tokenizer(self) -> Any:
        if self._processor is None:
            raise base.BackendError("the mlx-vlm model is not loaded")
        return getattr(self._processor, "tokenizer", self._processor)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer().encode(text, add_special_tokens=False))

    def chat(self, messages: list[base.ChatMessage], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        def prompt() -> tuple[str, list[Any]]:
            from mlx_vlm import prompt_utils

            images = [_pil_image(image) for message in messages for image in message.images]
            conversation = [_message(m) for m in messages]
            self._tokenizer()  # raises when not loaded
            try:
                text = prompt_utils.apply_chat_template(
                    self._processor, self._model.config, conversation, num_images=len(images)
                )
            except Exception as error:  # jinja raises for conversations the template refuses
                raise base.UnsupportedRequest(f"the chat template rejected the messages: {error}") from error
            return text, images

        return self._stream(prompt, params)

    def complete(self, prompt: str, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        return self._stream(lambda: (prompt, []), params)

    def _stream(self, make_prompt: Any, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        def run(cancel: threads.CancelToken) -> Iterator[base.Delta]:
            import mlx_vlm

            text, images = make_prompt()
            inputs = self._prepare(text, images)
            prompt_tokens = int(inputs["input_ids"].size)
            max_tokens = mlx_generation.budget(
                prompt_tokens, params.max_tokens, self.config.options.get("max_tokens"), self._context
            )
            extra = {key: value for key, value in inputs.items() if key not in _PREPARED}
            responses = mlx_vlm.stream_generate(
                self._model,
                self._processor,
                text,
                input_ids=inputs["input_ids"],
                pixel_values=inputs.get("pixel_values"),
                mask=inputs.get("attention_mask"),
                max_tokens=max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed,
                max_kv_size=self.config.options.get("max_kv_size"),
                **self._engine_kwargs,
                **extra,
            )
            return mlx_generation.deltas(responses, params.stop)

        return threads.stream(self._worker, run)

    def _prepare(self, text: str, images: list[Any]) -> dict[str, Any]:
        """Token ids (image tokens expanded by the processor), pixels and mask as MLX arrays."""
        import mlx.core as mx
        import numpy as np

        try:
            # Only text and images: no text options for the processor to misroute.
            prepared = self._processor(text=[text], images=images or None)
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
