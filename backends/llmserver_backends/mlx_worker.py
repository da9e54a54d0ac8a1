"""The life and generation loop the mlx and mlx-vlm backends share (mlx_generation holds the pure
pieces: stop strings, deltas, the token budget).

Both engines generate one sequence at a time in a blocking loop and keep MLX state that must never
be touched from two threads, so every MLX call (load, generation, unload) runs on the backend's
one worker thread (`threads`) and the event loop stays free. A generation is the same four steps
on both: build the prompt's engine inputs (a callable the subclass hands to `_stream`, run on the
worker), size the completion budget, start the engine's stream (`generate`), turn its responses
into Deltas ending at a stop string. Leaving the stream early stops the loop after the current token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import llmserver_api
from llmserver_backends import base, mlx_generation, threads, token_logprobs

log = logging.getLogger(__name__)

P = TypeVar("P")  # a request's engine inputs: token ids, or text + processor outputs
T = TypeVar("T")


def chat_template(render: Callable[[], T]) -> T:
    """Runs the model's chat template; jinja raises for conversations a template refuses, which is
    the client's error (400), not the engine's."""
    try:
        return render()
    except Exception as error:  # templates raise anything
        raise base.UnsupportedRequest(f"the chat template rejected the messages: {error}") from error


class MlxWorkerBackend(base.ModelBackend, Generic[P]):
    """Worker thread, load/unload, context length and the generation loop; a subclass says how to
    load (`load_engine`), how many tokens its inputs hold and how to start the engine's stream."""

    default_capabilities: frozenset[llmserver_api.Capability] = frozenset({llmserver_api.Capability.TEXT_GENERATION})
    engine_name: str = "mlx"  # in log lines: mlx-lm or mlx-vlm
    # generate_step arguments the subclass sets itself (extraArgs may set the others).
    managed: frozenset[str] = frozenset()

    def __init__(self, config: base.BackendConfig) -> None:
        super().__init__(config)
        self._worker = threads.single_worker(self.kind)
        self._model: Any = None
        self._engine: Any = None  # mlx-lm's TokenizerWrapper, or mlx-vlm's processor
        self._context = mlx_generation.context_length(config.model_path)
        self._engine_kwargs: dict[str, Any] = {}

    @property
    def capabilities(self) -> frozenset[llmserver_api.Capability]:
        if self.config.capabilities is not None:
            return self.config.capabilities
        return self.default_capabilities

    @property
    def context_length(self) -> int | None:
        return self._context

    async def load(self) -> None:
        self._model, self._engine = await threads.run(self._worker, self._load)

    def _load(self) -> tuple[Any, Any]:
        step, load = self.load_engine()
        self._engine_kwargs = mlx_generation.engine_kwargs(self.config.extra_args, step, self.managed)
        log.info("loading %s with %s", self.config.model_path, self.engine_name)
        # Passed explicitly: with no keyword arguments mlx-vlm loads configs with remote code on.
        return load(self.config.model_path, trust_remote_code=self.config.trust_remote_code)

    async def unload(self) -> None:
        await threads.run(self._worker, self._release)

    def _release(self) -> None:
        import mlx.core as mx

        self._model = self._engine = None
        mx.clear_cache()

    def _loaded_engine(self) -> Any:
        """The tokenizer or processor; an error while the model is not loaded."""
        if self._engine is None:
            raise base.BackendError(f"the {self.kind} model is not loaded")
        return self._engine

    def _stream(self, make: Callable[[], P], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        """Streams one generation; `make` builds the engine inputs, on the worker thread."""

        def run(cancel: threads.CancelToken) -> Iterator[base.Delta]:
            prepared = make()
            n_prompt = self.prompt_tokens(prepared)
            if n_prompt == 0:  # nothing to condition on: the engine would fail on an empty array
                raise base.UnsupportedRequest("the prompt must not be empty")
            max_tokens = mlx_generation.budget(n_prompt, params.max_tokens, self.default_max_tokens(), self._context)
            token_bytes = self.token_bytes() if params.logprobs is not None else None
            responses = self.generate(prepared, max_tokens, params)
            return mlx_generation.deltas(responses, params.stop, params.logprobs, token_bytes)

        return threads.stream(self._worker, run)

    def _hf_tokenizer(self) -> Any:
        """The Hugging Face tokenizer under mlx-lm's TokenizerWrapper or mlx-vlm's processor."""
        engine = self._loaded_engine()
        for candidate in (engine, getattr(engine, "tokenizer", None), getattr(engine, "_tokenizer", None)):
            if hasattr(type(candidate), "__len__") and hasattr(candidate, "convert_ids_to_tokens"):
                return candidate
        raise base.BackendError(f"the {self.kind} engine exposes no Hugging Face tokenizer")

    def token_bytes(self) -> Callable[[int], bytes]:
        """A token's UTF-8 bytes, for logprobs."""
        return token_logprobs.hf_token_bytes(self._hf_tokenizer())

    @property
    def vocab_size(self) -> int | None:
        return None if self._engine is None else len(self._hf_tokenizer())

    def load_engine(self) -> tuple[Callable[..., Any], Callable[..., tuple[Any, Any]]]:
        """(the engine's generate_step, which extraArgs are checked against; its `load`), imported
        on the worker thread."""
        raise NotImplementedError

    def prompt_tokens(self, prepared: P) -> int:
        """How many tokens the prepared prompt holds (for the completion budget)."""
        raise NotImplementedError

    def default_max_tokens(self) -> int | None:
        """Completion length when a request names none; None: what the context has left."""
        return None

    def generate(self, prepared: P, max_tokens: int, params: base.SamplingParams) -> Iterator[Any]:
        """The engine's stream of responses (`text`, `prompt_tokens`, `generation_tokens`,
        `finish_reason`)."""
        raise NotImplementedError
