"""llama.cpp (llama-cpp-python) backend for GGUF models.

Generation runs through continuous batching (`llama_cpp_batch`): `--parallel N` sequences share
one llama context (one unified KV cache of n_ctx cells, see `llama_cpp_context`), requests join
and leave between decode steps, and `max_concurrency` is N. Each request has its own llama.cpp
sampler chain (seed, penalties, grammar, logit bias), stop strings, usage and cancellation
(a client that leaves frees its slot at the next step). GGUF LoRA adapters
(`BackendConfig.adapters`) load with the model; a request runs with its adapter set on the
context, and requests for different adapters never share a decode step.

Chat uses the GGUF's own template (`tokenizer.chat_template`, rendered by llama-cpp-python's
Jinja2ChatFormatter) unless `-- chat_format=NAME` picks one of the library's named formats.
Embeddings use a second `Llama(embedding=True)` on the same file (mmap shares the weights): a
context built for embeddings does not produce logits for sampling. A causal GGUF has no pooling
metadata and would return one vector per token, so mean pooling is set explicitly there.
Extra args are `key=value` keyword arguments of `llama_cpp.Llama` (checked against its signature).
The model path may be a directory (what the operator serves for a repo whose one GGUF model is
split in parts): detection picks the GGUF in it; any part of a split loads from its first part,
and missing parts are named here instead of llama.cpp's bare "failed to load".
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pathlib
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import llama_cpp
from llama_cpp import llama_chat_format
from llmserver_api import detection

import llmserver_api
from llmserver_backends import base, cpu_budget, llama_cpp_batch, llama_cpp_context, llama_cpp_slots, stops, structured, threads

# Architectures llama.cpp runs as encoders: they embed, they cannot generate.
_ENCODER_ARCHS = {
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "jina-bert-v3",
    "t5encoder",
    "modern-bert",
    "neo-bert",
}
_DEFAULT_N_CTX = 4096


def gguf_file(model_path: str) -> str:
    """The file llama.cpp opens for `model_path`: a GGUF as given; in a directory, the GGUF
    detection finds there; for a part of a split GGUF, its first part (all parts present)."""
    path = pathlib.Path(model_path)
    if path.is_dir():
        found = detection.profile(detection.local_model_files(path))
        if found.model_file is None or found.problems:
            raise base.BackendError(f"no GGUF to load in {path}: {found.reason}")
        path = path / found.model_file
    parts = detection.split_parts(path.name)
    missing = [part for part in parts if not (path.parent / part).is_file()]
    if missing:
        raise base.BackendError(
            f"the split GGUF {parts[0]} in {path.parent} lacks {len(missing)} of its {len(parts)} parts: "
            f"{', '.join(missing)}"
        )
    return str(path.parent / parts[0]) if parts else str(path)


class LlamaCppBackend(base.ModelBackend):
    """One GGUF file served by llama.cpp."""

    kind = "llama-cpp"
    supported_parameters = frozenset(
        {
            "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "top_k", "min_p", "logit_bias",
            "logprobs", "top_logprobs", *structured.PARAMETERS,
        }
    )  # fmt: skip

    def __init__(self, config: base.BackendConfig) -> None:
        super().__init__(config)
        self._extra = base.parse_key_value_args(config.extra_args)
        allowed = set(inspect.signature(llama_cpp.Llama.__init__).parameters) - {"self", "kwargs", "model_path"}
        unknown = sorted(set(self._extra) - allowed)
        if unknown:
            raise ValueError(f"unknown llama_cpp.Llama arguments in extra args: {', '.join(unknown)}")
        if {"lora_path", "lora_base", "lora_scale"} & set(self._extra):
            # Llama applies them to its own context, which the batch scheduler does not decode in.
            raise ValueError("LoRA adapters are given as adapters (--adapter NAME=PATH), not as lora_path extra args")
        self._executor = threads.single_worker("llama-cpp")
        self._llm: llama_cpp.Llama | None = None
        self._embedder: llama_cpp.Llama | None = None
        self._capabilities: frozenset[llmserver_api.Capability] = frozenset()
        self._format: Callable[..., llama_chat_format.ChatFormatterResponse] | None = None
        self._context: Any = None  # llama_cpp._internals.LlamaContext of the generation slots
        self._scheduler: llama_cpp_batch.BatchScheduler | None = None
        self._token_table: llama_cpp_slots.TokenTable | None = None
        self._parallel = 1

    @property
    def capabilities(self) -> frozenset[llmserver_api.Capability]:
        return self._capabilities

    @property
    def context_length(self) -> int | None:
        if self._scheduler is not None:
            return self._scheduler.pool
        return self._embedder.n_ctx() if self._embedder is not None else None

    @property
    def max_concurrency(self) -> int:
        """The slots (`--parallel`): requests decoded together in one batch."""
        return self._parallel

    @property
    def batch_stats(self) -> base.BatchStats | None:
        """Decode steps and the sequences each carried (prompt chunks included), since the load."""
        scheduler = self._scheduler  # read once: an unload may clear it meanwhile
        return scheduler.stats.snapshot() if scheduler is not None else base.BatchStats()

    def _kwargs(self, metadata: dict[str, str]) -> dict[str, Any]:
        options = self.config.options
        arch = metadata.get("general.architecture", "")
        trained = int(metadata.get(f"{arch}.context_length", 0) or 0)
        n_ctx = options.get("n_ctx")
        if n_ctx is None:
            n_ctx = min(trained, _DEFAULT_N_CTX) if trained else _DEFAULT_N_CTX
        kwargs: dict[str, Any] = {
            "n_gpu_layers": options.get("n_gpu_layers", 0),
            "n_ctx": n_ctx,
            "n_batch": options.get("n_batch", 512),
            # llama.cpp's default is half the cores it sees, the node's, not the pod's CPU limit.
            "n_threads": options.get("n_threads") or default_threads(),
            "verbose": False,
        }
        return {**kwargs, **self._extra}

    def _detect(self, metadata: dict[str, str]) -> frozenset[llmserver_api.Capability]:
        arch = metadata.get("general.architecture", "")
        if self.config.capabilities is not None:
            wanted = self.config.capabilities
        elif arch in _ENCODER_ARCHS:
            wanted = frozenset({llmserver_api.Capability.EMBEDDINGS})
        else:
            wanted = frozenset({llmserver_api.Capability.TEXT_GENERATION})
        unsupported = wanted - {llmserver_api.Capability.TEXT_GENERATION, llmserver_api.Capability.EMBEDDINGS}
        if unsupported:
            names = ", ".join(sorted(c.value for c in unsupported))
            raise base.BackendError(f"the llama-cpp backend does not support {names}")
        if llmserver_api.Capability.TEXT_GENERATION in wanted and arch in _ENCODER_ARCHS:
            raise base.BackendError(f"a {arch} GGUF is an encoder: it cannot do TextGeneration")
        return wanted

    def _load_sync(self) -> None:
        path = gguf_file(self.config.model_path)
        reader = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        metadata = dict(reader.metadata)
        reader.close()
        self._capabilities = self._detect(metadata)
        kwargs = self._kwargs(metadata)
        if llmserver_api.Capability.TEXT_GENERATION in self._capabilities:
            self._load_generation(path, kwargs)
        if llmserver_api.Capability.EMBEDDINGS in self._capabilities:
            arch = metadata.get("general.architecture", "")
            embed_kwargs = {**kwargs, "embedding": True}
            if f"{arch}.pooling_type" not in metadata and "pooling_type" not in self._extra:
                embed_kwargs["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
            self._embedder = llama_cpp.Llama(model_path=path, **embed_kwargs)

    def _load_generation(self, path: str, kwargs: dict[str, Any]) -> None:
        self._llm = llama_cpp.Llama(model_path=path, **{**kwargs, "n_ctx": llama_cpp_context.PROBE_N_CTX})
        self._token_table = llama_cpp_slots.TokenTable(self._llm)
        n_ctx = int(kwargs["n_ctx"]) or self._llm._model.n_ctx_train()
        self._format = self._chat_formatter(self._llm)
        parallel = self.config.options.get("parallel")
        if parallel is None:
            gpu_layers = int(kwargs.get("n_gpu_layers") or 0)
            parallel = llama_cpp_context.default_parallel(gpu_layers, cpu_budget.affinity_cpus())
        self._parallel = int(parallel)
        n_batch = max(int(kwargs.get("n_batch") or 512), self._parallel)  # llama.cpp: one output per slot per step
        self._context = llama_cpp_context.batched_context(self._llm, n_ctx, n_batch, self._parallel)
        adapters = llama_cpp_context.load_adapters(self._llm, self.config.adapters)
        self._scheduler = llama_cpp_batch.BatchScheduler(
            self._context.ctx, self._parallel, n_batch, self._llm.n_vocab(), adapters
        )

    def _chat_formatter(self, llm: llama_cpp.Llama) -> Callable[..., llama_chat_format.ChatFormatterResponse]:
        name = self._extra.get("chat_format")
        template = llm.metadata.get("tokenizer.chat_template")
        if name is None and template:
            eos, bos = llm.token_eos(), llm.token_bos()
            return llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        name = name or "llama-2"  # llama-cpp-python's own fallback for GGUFs without a template
        for candidate in (f"format_{name.replace('-', '_')}", f"format_{name.replace('-', '')}"):
            formatter = getattr(llama_chat_format, candidate, None)
            if callable(formatter):
                return formatter
        raise base.BackendError(f"unknown chat_format {name!r}")

    async def load(self) -> None:
        await threads.run(self._executor, self._load_sync)

    async def unload(self) -> None:
        def close() -> None:
            if self._scheduler is not None:
                self._scheduler.close()
            if self._context is not None:
                self._context.close()
            self._scheduler = self._context = None
            for llm in (self._llm, self._embedder):
                if llm is not None:
                    llm.close()
            self._llm = self._embedder = None
            self._token_table = None

        await threads.run(self._executor, close)  # the idle worker thread stays for a later load()

    @property
    def vocab_size(self) -> int | None:
        return self._llm.n_vocab() if self._llm is not None else None

    def _tokens(self, text: str) -> list[int]:
        llm = self._llm or self._embedder
        assert llm is not None, "model not loaded"
        return llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as a completion prompt (BOS included when the model adds one)."""
        return len(self._tokens(text))

    def check_parameters(self, options: Mapping[str, object]) -> None:
        super().check_parameters(options)
        if "tools" in options and "chat_format" in self._extra:
            raise base.UnsupportedParameter("tools", "tools need the GGUF's own chat template (no chat_format)")

    def _chat_tokens(self, messages: list[base.ChatMessage], tools: tuple[Mapping[str, Any], ...]) -> list[int]:
        if any(m.images for m in messages):
            raise base.UnsupportedRequest("the llama-cpp backend does not accept images")
        assert self._llm is not None and self._format is not None, "model not loaded"
        rendered = self._format(messages=[_message_dict(m) for m in messages], **structured.tool_template_kwargs(tools))
        return self._llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    def _check_context(self, n_prompt: int, max_tokens: int | None, param: str) -> int:
        """The completion tokens the request may make; ContextLengthExceeded when it cannot fit."""
        limit = self.context_length or 0
        wanted = n_prompt + (max_tokens or 0)
        if n_prompt >= limit or wanted > limit:
            raise base.ContextLengthExceeded(
                f"This model's maximum context length is {limit} tokens. However, you requested {wanted} tokens "
                f"({n_prompt} in the {param}, {max_tokens or 0} in the completion)."
            )
        return max_tokens or limit - n_prompt

    def _sequence(
        self,
        prompt: Callable[[], list[int]],
        params: base.SamplingParams,
        param: str,
        outbox: llama_cpp_slots.Outbox,
        cancelled: threading.Event,
    ) -> llama_cpp_slots.SequenceState:
        """Tokenizes and checks a request and builds its sampler (in the scheduler thread)."""
        llm = self._llm
        assert llm is not None, "model not loaded"
        if params.adapter is not None and params.adapter not in self.config.adapters:
            raise base.UnsupportedRequest(f"no adapter {params.adapter!r} is loaded")
        tokens = prompt()
        if not tokens:
            if llm.token_bos() == -1:
                raise base.UnsupportedRequest("the prompt must not be empty")
            tokens = [llm.token_bos()]
        max_tokens = self._check_context(len(tokens), params.max_tokens, param)
        table = self._token_table
        assert table is not None, "model not loaded"
        return llama_cpp_slots.SequenceState(
            tokens=list(tokens),
            n_prompt=len(tokens),
            max_tokens=max_tokens,
            adapter=params.adapter,
            sampler=llama_cpp_slots.SequenceSampler(llm._model, llm.n_vocab(), params, llm.last_n_tokens_size),
            outbox=outbox,
            token_bytes=table.token_bytes,
            is_end=table.is_end,
            logprobs=params.logprobs,
            stop=stops.StopMatcher(params.stop),
            cancelled=cancelled,
        )

    async def _stream(
        self, prompt: Callable[[], list[int]], params: base.SamplingParams, param: str
    ) -> AsyncIterator[base.Delta]:
        scheduler = self._scheduler
        if scheduler is None:
            raise base.UnsupportedRequest("this model was loaded without the TextGeneration capability")
        request = llama_cpp_slots.Request(
            lambda outbox, cancelled: self._sequence(prompt, params, param, outbox, cancelled),
            llama_cpp_slots.Outbox(asyncio.get_running_loop()),
        )
        async for delta in llama_cpp_batch.drain(scheduler, request):
            yield delta

    def chat(self, messages: list[base.ChatMessage], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        return self._stream(lambda: self._chat_tokens(messages, params.tools), params, "messages")

    def complete(self, prompt: str, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        return self._stream(lambda: self._tokens(prompt), params, "prompt")

    def _embed_sync(self, texts: list[str]) -> base.Embeddings:
        embedder = self._embedder
        if embedder is None:
            raise base.UnsupportedRequest("this model was loaded without the Embeddings capability")
        limit = min(embedder.n_ctx(), embedder.n_batch)
        for text in texts:
            n = len(embedder.tokenize(text.encode("utf-8")))
            if n == 0:  # llama.cpp aborts the whole process on an empty sequence
                raise base.UnsupportedRequest("An input is empty: there is nothing to embed.")
            if n > limit:
                raise base.ContextLengthExceeded(f"An input has {n} tokens; this model embeds at most {limit}.")
        vectors, count = embedder.embed(texts, normalize=True, truncate=False, return_count=True)
        return base.Embeddings(vectors=[list(v) for v in vectors], prompt_tokens=count)

    async def embed(self, texts: list[str]) -> base.Embeddings:
        return await threads.run(self._executor, self._embed_sync, texts)


def _message_dict(message: base.ChatMessage) -> dict[str, Any]:
    return structured.template_message(
        message.role, message.content, name=message.name, tool_calls=message.tool_calls, tool_call_id=message.tool_call_id
    )


def default_threads() -> int:
    """Generation threads when `--n-threads` is unset: llama.cpp's own default (half the visible
    cores, for SMT siblings) capped by the CPU budget (cpuset and cgroup quota)."""
    return max(1, min((os.cpu_count() or 2) // 2, cpu_budget.cpu_budget()))
