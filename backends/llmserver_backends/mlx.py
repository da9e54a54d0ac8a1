"""The mlx backend: mlx-lm text generation (Metal on Apple Silicon; mlx[cpu] elsewhere).

mlx-lm generates one sequence at a time in a blocking loop, so every MLX call (load included)
runs on this backend's single worker thread (`threads`): MLX state is never touched from two
threads, and the event loop stays free. Leaving the stream early stops the loop after the current
token. Chat prompts come from the tokenizer's own chat template, as mlx_lm.server does.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from llmserver_backends import base, mlx_generation, threads

log = logging.getLogger(__name__)

# generate_step arguments this backend sets itself (extraArgs may set the others).
_MANAGED = frozenset({"prompt", "model", "stream", "max_tokens", "sampler", "max_kv_size", "prompt_cache"})


class MlxBackend(base.ModelBackend):
    """Serves one text model with mlx-lm; options: max_kv_size (rotating KV cache size)."""

    kind = "mlx"

    def __init__(self, config: base.BackendConfig) -> None:
        super().__init__(config)
        self._worker = threads.single_worker("mlx")
        self._model: Any = None
        self._tokenizer: Any = None  # mlx_lm TokenizerWrapper
        self._context = mlx_generation.context_length(config.model_path)
        self._engine_kwargs: dict[str, Any] = {}

    @property
    def capabilities(self) -> frozenset[base.Capability]:
        if self.config.capabilities is not None:
            return self.config.capabilities
        return frozenset({base.Capability.TEXT_GENERATION})

    @property
    def context_length(self) -> int | None:
        return self._context

    async def load(self) -> None:
        self._model, self._tokenizer = await threads.run(self._worker, self._load)

    def _load(self) -> tuple[Any, Any]:
        import mlx_lm

        # importlib: the package attribute `mlx_lm.generate` is the function, not the module.
        step = importlib.import_module("mlx_lm.generate").generate_step
        self._engine_kwargs = mlx_generation.engine_kwargs(self.config.extra_args, step, _MANAGED)
        log.info("loading %s with mlx-lm", self.config.model_path)
        return mlx_lm.load(self.config.model_path, trust_remote_code=self.config.trust_remote_code)

    async def unload(self) -> None:
        await threads.run(self._worker, self._release)

    def _release(self) -> None:
        import mlx.core as mx

        self._model = self._tokenizer = None
        mx.clear_cache()

    def _require_tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise base.BackendError("the mlx model is not loaded")
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._require_tokenizer().encode(text))

    def chat(self, messages: list[base.ChatMessage], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        conversation = [{"role": m.role, "content": m.content} for m in messages]

        def tokens() -> list[int]:
            tokenizer = self._require_tokenizer()
            try:
                prompt = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            except Exception as error:  # jinja raises for conversations the template refuses
                raise base.UnsupportedRequest(f"the chat template rejected the messages: {error}") from error
            # The template wrote the special tokens; the tokenizer must not add a BOS again.
            return list(tokenizer.encode(prompt, add_special_tokens=False))

        return self._stream(tokens, params)

    def complete(self, prompt: str, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        return self._stream(lambda: list(self._require_tokenizer().encode(prompt)), params)

    def _stream(self, tokens: Any, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        def run(cancel: threads.CancelToken) -> Iterator[base.Delta]:
            import mlx.core as mx
            import mlx_lm
            from mlx_lm import sample_utils

            prompt = tokens()
            max_tokens = mlx_generation.budget(len(prompt), params.max_tokens, None, self._context)
            if params.seed is not None:
                mx.random.seed(params.seed)
            responses = mlx_lm.stream_generate(
                self._model,
                self._require_tokenizer(),
                prompt,
                max_tokens=max_tokens,
                sampler=sample_utils.make_sampler(temp=params.temperature, top_p=mlx_generation.top_p(params.top_p)),
                max_kv_size=self.config.options.get("max_kv_size"),
                **self._engine_kwargs,
            )
            return mlx_generation.deltas(responses, params.stop)

        return threads.stream(self._worker, run)
