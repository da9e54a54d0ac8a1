"""The one interface every inference engine implements.

The server (llmserver_runtime.server) only ever talks to a `ModelBackend`. Everything is async
and streaming-first: a non-streaming response is the server folding the same stream, so every
backend gets streaming, usage counting and cancellation by implementing one generator. Blocking
engines (llama.cpp, transformers, mlx) run their loops in a worker thread (see `threads`);
engines with their own batching (vLLM) are awaited directly and say so with `max_concurrency`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import llmserver_api
from llmserver_backends import structured


class BackendError(Exception):
    """A failure inside the engine. The server answers 500 without the message's internals."""


class ContextLengthExceeded(BackendError):
    """The prompt (plus max_tokens) does not fit the model's context. Answered as a 400."""


class UnsupportedRequest(BackendError):
    """A request the backend cannot serve (e.g. an option it lacks). Answered as a 400."""


class UnsupportedParameter(UnsupportedRequest):
    """A request field (`param`) the engine does not honour, or not with this value. Answered as a
    400 naming it with code unsupported_parameter: never silently ignored."""

    def __init__(self, param: str, message: str | None = None) -> None:
        super().__init__(message or f"{param} is not supported by this server's engine.")
        self.param = param


class BackendUnavailable(BackendError):
    """The engine cannot take work right now (dead engine, out of memory). Answered as a 503."""


def parse_key_value_args(args: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`("n_threads=4", "flash_attn=true", "rope_freq_base=1e4")` -> typed keyword arguments.

    Values become bool (true/false), None (none/null), int or float where they parse as such, and
    str otherwise; a leading `--` and dashes in keys are accepted (`--n-threads=4`). An item without
    `=` is a ValueError naming it, so a bad `extraArgs` entry fails the load with a clear message.
    """
    parsed: dict[str, Any] = {}
    for item in args:
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise ValueError(f"extra argument {item!r} is not of the form key=value")
        parsed[key] = _parse_scalar(raw.strip())
    return parsed


def _parse_scalar(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


@dataclasses.dataclass(frozen=True)
class BackendConfig:
    """What a backend needs to load: a local model path plus its typed engine options.

    `options` holds only the engine flags that were given, keyed by the flag's snake_case name
    (`n_ctx`, `dtype`, ...); which flags exist and which engines take them is declared once, in
    `llmserver_api.engine_flags.EngineFlags`. `extra_args` are the words after `--`, unchanged
    (see `parse_key_value_args` for engines that take key=value keywords).
    """

    model_path: str
    served_model_name: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    capabilities: frozenset[llmserver_api.Capability] | None = None  # None: detect from the model
    trust_remote_code: bool = False
    extra_args: tuple[str, ...] = ()
    # LoRA adapters loaded with the model: adapter name -> local path (a peft folder, a GGUF LoRA
    # file, ...). Each is served as `<served_model_name>:<name>`; requests pick one by
    # `SamplingParams.adapter`.
    adapters: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ImagePart:
    """An image from a chat content part, already decoded from its data URL."""

    data: bytes
    mime_type: str = "image/png"


@dataclasses.dataclass(frozen=True)
class ChatMessage:
    """One chat message; `images` holds the decoded image parts in order."""

    role: str
    content: str
    images: tuple[ImagePart, ...] = ()
    name: str | None = None
    tool_calls: tuple[structured.ToolCall, ...] = ()  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool message: the call it answers


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by chat and completions. Fields past `seed` reach a backend only
    when it lists them in `supported_parameters` (the server refuses them otherwise); their
    defaults mean "off"."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    logit_bias: Mapping[int, float] = dataclasses.field(default_factory=dict)
    logprobs: int | None = None  # None: none; k >= 0: each token's logprob and its k likeliest alternatives
    # Structured output (response_format, or a tool_choice that forces a call): the output must be
    # this JSON. Reaches a backend only when it lists response_format / tool_choice as supported.
    constraint: structured.JsonConstraint | None = None
    # OpenAI tool definitions the chat template shows the model (`tools`, unless tool_choice none).
    tools: tuple[Mapping[str, Any], ...] = ()
    # The LoRA adapter this request runs with (a name in `ModelBackend.adapters`); None: the base
    # model. The server resolves `<model>:<adapter>` names and refuses unknown ones before this.
    adapter: str | None = None


@dataclasses.dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log probability and the likeliest alternatives at its position
    (natural log of the model's distribution before sampling filters)."""

    token: str
    logprob: float
    token_bytes: bytes
    top: tuple[tuple[str, float, bytes], ...] = ()


@dataclasses.dataclass(frozen=True)
class Delta:
    """One step of generation. Token counts are cumulative so the last delta carries the usage."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None  # "stop" | "length" on the last delta
    # time.perf_counter() when the engine produced it. Optional: engines whose deltas reach the
    # event loop in batches (threads.stream coalesces wake-ups) set it so TTFT and inter-token
    # latency metrics stay exact; otherwise the server uses the time it received the delta.
    at: float | None = None
    # Log probabilities of the tokens this delta adds, when SamplingParams.logprobs asked for them.
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """Vectors in input order plus the tokens they consumed."""

    vectors: list[list[float]]
    prompt_tokens: int


@dataclasses.dataclass(frozen=True)
class RerankScores:
    """One relevance score per document, in document order."""

    scores: list[float]
    prompt_tokens: int


@dataclasses.dataclass
class BatchStats:
    """What a batching engine's scheduler did so far: proof that concurrent requests shared
    forward passes (tests, benches) and the source of the runtime's batch metrics, read at scrape
    time. Updated by the engine's model thread only; readers take a `snapshot`."""

    prefill_passes: int = 0  # forward passes over joining requests' prompts only
    passes_by_rows: dict[int, int] = dataclasses.field(default_factory=dict)  # rows -> decode passes

    def record_decode(self, rows: int) -> None:
        """One decode pass that carried `rows` sequences (one dict update: it runs once per
        generated token on a single stream; the totals below are derived when read)."""
        self.passes_by_rows[rows] = self.passes_by_rows.get(rows, 0) + 1

    @property
    def decode_passes(self) -> int:
        """Forward passes over running rows (one token for each row)."""
        return sum(self.passes_by_rows.values())

    @property
    def rows_decoded(self) -> int:
        """Rows carried by decode passes, summed over passes."""
        return sum(rows * passes for rows, passes in self.passes_by_rows.items())

    @property
    def largest_batch(self) -> int:
        """Most rows one decode pass carried."""
        return max(self.passes_by_rows, default=0)

    def snapshot(self) -> BatchStats:
        """A copy another thread may read while the model thread goes on counting."""
        return dataclasses.replace(self, passes_by_rows=dict(self.passes_by_rows))


class ModelBackend(abc.ABC):
    """An inference engine serving one model.

    Subclasses set `kind` (the CRD backend enum value) and implement what their capabilities
    promise; the defaults raise UnsupportedRequest so a missing capability is a 400, not a crash.
    """

    kind: ClassVar[str]
    # Optional request fields (by their OpenAI name) this engine honours: `seed`, the penalties,
    # `top_k`, `min_p`, `logit_bias`, `logprobs`, `top_logprobs`, `response_format`, `tools`, ...
    # The server refuses any other generation-changing field with a 400 naming it. Support that
    # depends on the value or on the loaded model is checked per request by `check_parameters`.
    supported_parameters: ClassVar[frozenset[str]] = frozenset()

    # True when adapters can be added and removed while the model stays loaded (`load_adapter`);
    # False: adapters are fixed at load (`BackendConfig.adapters`), a change needs a restart.
    supports_live_adapters: ClassVar[bool] = False

    def __init__(self, config: BackendConfig) -> None:
        self.config = config

    @property
    def adapters(self) -> tuple[str, ...]:
        """Names of the LoRA adapters loaded now (served as `<model>:<name>`)."""
        return tuple(self.config.adapters)

    async def load_adapter(self, name: str, path: str) -> None:
        """Loads one more LoRA adapter while the model stays loaded (engines with live adapters)."""
        raise UnsupportedRequest(f"the {self.kind} backend loads adapters only at start")

    async def unload_adapter(self, name: str) -> None:
        """Removes a loaded adapter while the model stays loaded (engines with live adapters)."""
        raise UnsupportedRequest(f"the {self.kind} backend loads adapters only at start")

    @property
    @abc.abstractmethod
    def capabilities(self) -> frozenset[llmserver_api.Capability]:
        """Capabilities of the loaded model (explicit config wins over detection)."""

    @property
    def max_concurrency(self) -> int:
        """Requests the engine can run at once; 1 for single-stream in-process engines."""
        return 1

    @property
    def context_length(self) -> int | None:
        """Maximum prompt + completion tokens, when the engine knows it."""
        return None

    @property
    def batch_stats(self) -> BatchStats | None:
        """Decode passes and the rows each carried, for engines that batch requests in-process
        (the runtime exports them as metrics); None for engines that do not, or batch out of sight."""
        return None

    @abc.abstractmethod
    async def load(self) -> None:
        """Loads the model; raises on failure (the server then exits non-zero)."""

    async def unload(self) -> None:
        """Frees the model's memory. Called at shutdown and by idle unload."""

    async def warm_up(self) -> None:
        """Runs one tiny request so the first real one is not slow; `/ready` waits for it."""
        if llmserver_api.Capability.TEXT_GENERATION in self.capabilities:
            async for _ in self.complete("Hello", SamplingParams(max_tokens=1, temperature=0.0)):
                pass
        elif llmserver_api.Capability.EMBEDDINGS in self.capabilities:
            await self.embed(["Hello"])
        elif llmserver_api.Capability.RERANK in self.capabilities:
            await self.rerank("Hello", ["world"])

    def check_parameters(self, options: Mapping[str, object]) -> None:
        """Per-request checks of the generation options (each already in `supported_parameters`);
        raise UnsupportedParameter naming the field the engine cannot honour with its value."""
        bias = options.get("logit_bias")
        vocab = self.vocab_size
        if isinstance(bias, Mapping) and vocab is not None:
            for key in bias:
                if int(str(key)) >= vocab:
                    raise UnsupportedParameter(
                        "logit_bias", f"logit_bias names token {key}; this model's vocabulary has {vocab} tokens."
                    )

    @property
    def vocab_size(self) -> int | None:
        """Token ids run from 0 to vocab_size - 1, when the engine knows it (bounds logit_bias)."""
        return None

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` under the model's tokenizer."""
        raise UnsupportedRequest(f"the {self.kind} backend cannot count tokens")

    def chat(self, messages: list[ChatMessage], params: SamplingParams) -> AsyncIterator[Delta]:
        """Streams a chat completion using the model's chat template."""
        raise UnsupportedRequest(f"the {self.kind} backend does not support chat")

    def complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[Delta]:
        """Streams a plain text completion."""
        raise UnsupportedRequest(f"the {self.kind} backend does not support completions")

    async def embed(self, texts: list[str]) -> Embeddings:
        """One pooled, L2-normalised vector per input text."""
        raise UnsupportedRequest(f"the {self.kind} backend does not support embeddings")

    async def rerank(self, query: str, documents: list[str]) -> RerankScores:
        """Relevance of each document to the query."""
        raise UnsupportedRequest(f"the {self.kind} backend does not support rerank")
