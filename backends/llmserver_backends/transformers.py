"""Hugging Face transformers (+ torch) backend: causal LMs, embedding encoders, cross-encoders.

What it serves is read from the model's config (`transformers_loading.detect_capabilities`)
unless the LLMServer states capabilities: a `*ForCausalLM` generates text with the tokenizer's
chat template, an encoder (e.g. a sentence-transformers model) embeds, a
`*ForSequenceClassification` reranks. Options: dtype (auto|float32|float16|bfloat16; float32 on
CPU by default), load_in_4bit / load_in_8bit (bitsandbytes, CPU included). Remote code runs only
with `trust_remote_code`. Extra args are `key=value` keywords for `from_pretrained` (e.g.
`attn_implementation=eager`). One model thread runs every model call; concurrent generation
requests are decoded together in batches of up to `max_batch_size` (`transformers_scheduler`),
and LoRA adapters (peft) load at start and live, one adapter per batch (`transformers_adapters`).
"""

from __future__ import annotations

import gc
import os
import random
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import llmserver_api
from llmserver_backends import base, cpu_budget, structured, threads, xgrammar_guide
from llmserver_backends import transformers_adapters as adapters
from llmserver_backends import transformers_batch as batching
from llmserver_backends import transformers_encoders as encoders
from llmserver_backends import transformers_generation as generation
from llmserver_backends import transformers_loading as loading
from llmserver_backends import transformers_scheduler as scheduling

# Rows decoded together when `maxBatchSize` is unset: a clear throughput gain on a CPU or GPU for
# small and mid-sized models while each request's KV cache stays modest.
DEFAULT_MAX_BATCH_SIZE = 8


class TransformersBackend(base.ModelBackend):
    """One Hugging Face model directory served in-process with torch."""

    kind = "transformers"
    supported_parameters = frozenset(
        {
            "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "top_k", "min_p", "logit_bias",
            "logprobs", "top_logprobs", *structured.PARAMETERS,
        }
    )  # fmt: skip
    supports_live_adapters: ClassVar[bool] = True

    def __init__(self, config: base.BackendConfig) -> None:
        super().__init__(config)
        self._extra = base.parse_key_value_args(config.extra_args)
        if "trust_remote_code" in self._extra:  # the opt-in is the LLMServer's trustRemoteCode, nothing else
            raise ValueError("trust_remote_code cannot be set in extra args; use the trustRemoteCode field")
        if config.options.get("load_in_4bit") and config.options.get("load_in_8bit"):
            raise ValueError("load_in_4bit and load_in_8bit are mutually exclusive")
        self._executor = threads.single_worker("transformers")
        self._capabilities: frozenset[llmserver_api.Capability] = config.capabilities or frozenset()
        self._head: loading.Head | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._context_length: int | None = None
        self._pooling = "mean"
        self._embed_max: int | None = None
        self._stop_ids: frozenset[int] = frozenset()
        self._grammars: xgrammar_guide.Compiler | None = None  # built on the first constrained request
        self._adapters: adapters.AdapterSet | None = None
        batch_size = int(config.options.get("max_batch_size") or DEFAULT_MAX_BATCH_SIZE)
        if batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._scheduler = scheduling.Scheduler(self._executor, batch_size)

    @property
    def capabilities(self) -> frozenset[llmserver_api.Capability]:
        return self._capabilities

    @property
    def context_length(self) -> int | None:
        return self._context_length

    @property
    def max_concurrency(self) -> int:
        """Generation requests decoded together (each in its own row of the batch)."""
        return self._scheduler.max_batch_size

    @property
    def batch_stats(self) -> base.BatchStats:
        """Forward passes and batch sizes so far: shows that concurrent requests shared passes."""
        return self._scheduler.stats

    @property
    def adapters(self) -> tuple[str, ...]:
        return self._adapters.names if self._adapters is not None else ()

    @property
    def vocab_size(self) -> int | None:
        if self._model is None or self._head != loading.Head.CAUSAL_LM:
            return None
        return int(self._model.get_output_embeddings().weight.shape[0])

    # -- loading --------------------------------------------------------------------------------

    def _load_sync(self) -> None:
        import torch
        import transformers

        if "OMP_NUM_THREADS" not in os.environ and not torch.cuda.is_available():
            torch.set_num_threads(cpu_budget.cpu_budget())  # the pod's CPU limit, not the node's cores
        path, remote = self.config.model_path, self.config.trust_remote_code
        hf_config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=remote)
        self._capabilities = self.config.capabilities or loading.detect_capabilities(hf_config, path)
        self._head = loading.choose_head(self._capabilities, hf_config)
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=remote)
        kwargs = {**loading.model_kwargs(self.config.options, remote, torch.cuda.is_available()), **self._extra}
        auto_class = {
            loading.Head.CAUSAL_LM: transformers.AutoModelForCausalLM,
            loading.Head.ENCODER: transformers.AutoModel,
            loading.Head.SEQUENCE_CLASSIFICATION: transformers.AutoModelForSequenceClassification,
        }[self._head]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
            self._model = auto_class.from_pretrained(path, **kwargs).eval()
        self._context_length = loading.context_length(hf_config, getattr(self._tokenizer, "model_max_length", None))
        if self._head is loading.Head.ENCODER:
            self._pooling, st_max = loading.sentence_transformers_settings(path)
            self._embed_max = st_max or self._context_length
        else:
            self._embed_max = self._context_length
        self._stop_ids = self._end_of_generation_ids()
        self._adapters = adapters.AdapterSet(self._model)
        for name, adapter_path in self.config.adapters.items():
            if self._head is not loading.Head.CAUSAL_LM:
                raise base.BackendError("LoRA adapters need a text generation model")
            self._adapters.load(name, adapter_path)
        pad = self._tokenizer.pad_token_id
        pad = pad if pad is not None else next(iter(sorted(self._stop_ids)), 0)
        keep_last = batching.keeps_last_logits_only(self._model)
        self._scheduler.attach(scheduling.ModelHandle(self._adapters, int(pad), self._model.device, keep_last))

    def _end_of_generation_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        generation_config = getattr(self._model, "generation_config", None)
        for source in (getattr(generation_config, "eos_token_id", None), self._tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(int(i) for i in source)
        return frozenset(ids)

    async def load(self) -> None:
        await threads.run(self._executor, self._load_sync)

    async def unload(self) -> None:
        def release() -> None:
            self._scheduler.attach(None)
            self._model = self._tokenizer = self._adapters = None
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

        await threads.run(self._executor, release)
        self._executor.shutdown(wait=False)

    # -- generation -----------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as a completion prompt (special tokens the tokenizer adds included)."""
        assert self._tokenizer is not None, "model not loaded"
        return len(self._tokenizer(text, add_special_tokens=True)["input_ids"])

    def _require(self, capability: llmserver_api.Capability) -> None:
        if capability not in self._capabilities:
            raise base.UnsupportedRequest(f"this model was loaded without the {capability.value} capability")

    def _completion_tokens(self, prompt: str) -> list[int]:
        tokens = list(self._tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if not tokens:
            start = self._tokenizer.bos_token_id
            if start is None:
                raise base.UnsupportedRequest("the prompt must not be empty")
            tokens = [start]
        return tokens

    def _guide(self, constraint: structured.JsonConstraint | None) -> xgrammar_guide.Guide | None:
        if constraint is None:
            return None
        if self._grammars is None:
            vocab = int(getattr(self._model.config, "vocab_size", 0) or len(self._tokenizer))
            self._grammars = xgrammar_guide.Compiler(self._tokenizer, vocab, self._stop_ids)
        return self._grammars.guide(constraint)

    def _chat_tokens(self, messages: list[base.ChatMessage], tools: tuple[Any, ...] = ()) -> list[int]:
        if any(m.images for m in messages):
            raise base.UnsupportedRequest("the transformers backend does not accept images")
        if not getattr(self._tokenizer, "chat_template", None):
            raise base.UnsupportedRequest("this model has no chat template; use /v1/completions")
        dicts = [
            structured.template_message(
                m.role, m.content, name=m.name, tool_calls=m.tool_calls, tool_call_id=m.tool_call_id
            )
            for m in messages
        ]
        text = self._tokenizer.apply_chat_template(
            dicts, add_generation_prompt=True, tokenize=False, **structured.tool_template_kwargs(tools)
        )
        # The template already holds any BOS/special tokens: adding them again would double them.
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    async def load_adapter(self, name: str, path: str) -> None:
        """Loads a peft adapter while the model serves; requests already running are unaffected."""
        self._require(llmserver_api.Capability.TEXT_GENERATION)
        await self._scheduler.call(self._loaded_adapters().load, name, path)

    async def unload_adapter(self, name: str) -> None:
        """Removes an adapter; requests still running with it end with an error."""
        await self._scheduler.call(self._loaded_adapters().unload, name)

    def _loaded_adapters(self) -> adapters.AdapterSet:
        if self._adapters is None:
            raise base.BackendUnavailable("the model is not loaded")
        return self._adapters

    def _sequence(
        self, prompt: Callable[[], list[int]], params: base.SamplingParams, param: str
    ) -> generation.Sequence:
        """A request's decoding state, built on the model thread when the scheduler admits it."""
        self._require(llmserver_api.Capability.TEXT_GENERATION)
        tokens = prompt()
        limit = self._context_length
        if limit is not None:
            wanted = len(tokens) + (params.max_tokens or 0)
            if len(tokens) >= limit or wanted > limit:
                raise base.ContextLengthExceeded(
                    f"This model's maximum context length is {limit} tokens. However, you requested {wanted} "
                    f"tokens ({len(tokens)} in the {param}, {params.max_tokens or 0} in the completion)."
                )
        max_tokens = params.max_tokens or ((limit - len(tokens)) if limit is not None else 16)
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        return generation.Sequence(
            self._tokenizer, tokens, params,
            max_tokens=max_tokens, stop_ids=self._stop_ids, seed=seed, guide=self._guide(params.constraint),
        )  # fmt: skip

    def chat(self, messages: list[base.ChatMessage], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        def tokens() -> list[int]:
            return self._chat_tokens(messages, params.tools)

        return self._scheduler.stream(lambda: self._sequence(tokens, params, "messages"), params.adapter)

    def complete(self, prompt: str, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        return self._scheduler.stream(
            lambda: self._sequence(lambda: self._completion_tokens(prompt), params, "prompt"), params.adapter
        )

    # -- encoders -------------------------------------------------------------------------------

    def _embed_sync(self, texts: list[str]) -> base.Embeddings:
        self._require(llmserver_api.Capability.EMBEDDINGS)
        causal = self._head is loading.Head.CAUSAL_LM
        with self._loaded_adapters().active(None) as model:  # embeddings come from the base model
            return encoders.embed(
                model, self._tokenizer, texts, mode=self._pooling, max_length=self._embed_max, causal=causal
            )

    async def embed(self, texts: list[str]) -> base.Embeddings:
        return await self._scheduler.call(self._embed_sync, texts)

    def _rerank_sync(self, query: str, documents: list[str]) -> base.RerankScores:
        self._require(llmserver_api.Capability.RERANK)
        return encoders.rerank(self._model, self._tokenizer, query, documents, self._context_length)

    async def rerank(self, query: str, documents: list[str]) -> base.RerankScores:
        return await self._scheduler.call(self._rerank_sync, query, documents)
