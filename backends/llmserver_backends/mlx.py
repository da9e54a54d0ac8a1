"""The mlx backend: mlx-lm text generation (Metal on Apple Silicon; mlx[cpu] elsewhere).

The worker thread, load/unload and the generation loop are mlx_worker's (shared with mlx-vlm);
this file says how mlx-lm loads, tokenizes and streams. Chat prompts come from the tokenizer's
own chat template, as mlx_lm.server does.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from llmserver_backends import base, mlx_adapters, mlx_generation, mlx_grammar, mlx_worker, structured, xgrammar_guide


class MlxBackend(mlx_worker.MlxWorkerBackend[list[int]]):
    """Serves one text model with mlx-lm; options: max_kv_size (rotating KV cache size). LoRA
    adapters (`BackendConfig.adapters`, mlx-lm or peft folders) are applied at load, each as a view
    over the shared base weights (mlx_adapters); changing them needs a restart."""

    kind = "mlx"
    supported_parameters = frozenset(
        {
            "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "top_k", "min_p", "logit_bias",
            "logprobs", "top_logprobs", *structured.PARAMETERS,
        }
    )  # fmt: skip
    _grammars: xgrammar_guide.Compiler | None = None  # built on the first constrained request
    engine_name = "mlx-lm"
    managed = frozenset(
        {"prompt", "model", "stream", "max_tokens", "sampler", "logits_processors", "max_kv_size", "prompt_cache"}
    )

    def load_engine(self) -> tuple[Callable[..., Any], Callable[..., tuple[Any, Any]]]:
        import mlx_lm

        # importlib: the package attribute `mlx_lm.generate` is the function, not the module.
        return importlib.import_module("mlx_lm.generate").generate_step, mlx_lm.load

    def __init__(self, config: base.BackendConfig) -> None:
        super().__init__(config)
        self._adapted: dict[str, Any] = {}  # adapter name -> model view with it applied

    def _load(self) -> tuple[Any, Any]:
        model, tokenizer = super()._load()
        self._adapted = {name: mlx_adapters.adapted(model, path) for name, path in self.config.adapters.items()}
        return model, tokenizer

    def _release(self) -> None:
        self._adapted = {}
        super()._release()

    def _model_for(self, adapter: str | None) -> Any:
        if adapter is None:
            return self._model
        if adapter not in self._adapted:
            raise base.UnsupportedRequest(f"the LoRA adapter {adapter!r} is not loaded")
        return self._adapted[adapter]

    def count_tokens(self, text: str) -> int:
        return len(self._loaded_engine().encode(text))

    def chat(self, messages: list[base.ChatMessage], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        conversation = [
            structured.template_message(m.role, m.content, tool_calls=m.tool_calls, tool_call_id=m.tool_call_id)
            for m in messages
        ]
        tools = structured.tool_template_kwargs(params.tools)

        def tokens() -> list[int]:
            tokenizer = self._loaded_engine()
            prompt = mlx_worker.chat_template(
                lambda: tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False, **tools)
            )
            # The template wrote the special tokens; the tokenizer must not add a BOS again.
            return list(tokenizer.encode(prompt, add_special_tokens=False))

        return self._stream(tokens, params)

    def complete(self, prompt: str, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        def tokens() -> list[int]:
            tokenizer = self._loaded_engine()
            ids = list(tokenizer.encode(prompt))
            if not ids and getattr(tokenizer, "bos_token_id", None) is not None:
                ids = [tokenizer.bos_token_id]  # an empty prompt starts from BOS, as on llama.cpp
            return ids

        return self._stream(tokens, params)

    def prompt_tokens(self, prepared: list[int]) -> int:
        return len(prepared)

    def _grammar_processors(self, params: base.SamplingParams) -> list[Any]:
        if params.constraint is None:
            return []
        if self._grammars is None:
            self._grammars = mlx_grammar.compiler(self._model, self._loaded_engine())
        guide = self._grammars.guide(params.constraint)
        return [] if guide is None else [mlx_grammar.GrammarProcessor(guide)]

    def generate(self, prepared: list[int], max_tokens: int, params: base.SamplingParams) -> Iterator[Any]:
        import mlx.core as mx
        import mlx_lm
        from mlx_lm import sample_utils

        if params.seed is not None:
            mx.random.seed(params.seed & 0xFFFFFFFFFFFFFFFF)  # mlx seeds are unsigned 64-bit
        return mlx_lm.stream_generate(
            self._model_for(params.adapter),
            self._loaded_engine(),
            prepared,
            max_tokens=max_tokens,
            sampler=sample_utils.make_sampler(
                temp=params.temperature,
                top_p=mlx_generation.top_p(params.top_p),
                min_p=params.min_p,
                top_k=params.top_k,
            ),
            logits_processors=sample_utils.make_logits_processors(
                **mlx_generation.sampling_kwargs(params, self.context_length)
            )
            + self._grammar_processors(params),
            max_kv_size=self.config.options.get("max_kv_size"),
            **self._engine_kwargs,
        )
