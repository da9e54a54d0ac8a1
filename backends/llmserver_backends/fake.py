"""A deterministic backend with every capability, for tests of the server, gateway and operator.

No model files, no ML libraries: "tokens" are words and punctuation (`\\w+|[^\\w\\s]`), generation
picks words from a fixed vocabulary with a PRNG seeded by the prompt (and `seed`; sampling options
and logprobs go through `fake_sampling`, token id = word index), embeddings are
hashed bag-of-words vectors (so texts sharing words are similar) and rerank scores are their
cosine. Usage counts are exact under that tokenizer: `count_tokens(text)` of the generated text
equals `completion_tokens`.

Options (from `BackendConfig.options` or `-- key=value` extra args):
  delay_per_token (s, 0), first_token_delay (s, 0), load_delay (s, 0), fail_load (false),
  fail_after_tokens (none: raise a BackendError after that many tokens), max_concurrency (64),
  context_length (2048), stop_after (48: natural end of a reply, finish_reason "stop"),
  dim (32: embedding size), image_tokens (4: prompt tokens per image), encode_delay (s, 0: embed and
  rerank block a worker thread that long first, as in-process engines do; nothing interrupts it),
  echo (false: chat replies with the last message's text, token by token, so tests can script
  what the "model" writes, e.g. a tool call for tool_choice auto), live_adapters (true).
Adapters: `BackendConfig.adapters` (their paths are never read) and, unless live_adapters=false,
live `load_adapter`/`unload_adapter`. A request with `SamplingParams.adapter` draws its words from
a PRNG keyed by the prompt and the adapter's name, so each adapter answers differently from the
base model and from every other adapter, deterministically (echo replies are scripted, unchanged).
Tools: rendered by the fake template (`<|tools|>` line) and parsed from the reply with
tool_choice auto; the fake cannot constrain decoding, so a forcing tool_choice and
response_format are refused (400), as on an engine without grammar support.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import llmserver_api
from llmserver_backends import base, fake_sampling, threads

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar "
    "papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu red orange yellow green "
    "blue violet north south east west spring summer autumn winter river mountain forest desert "
    "ocean island valley meadow canyon glacier harbor lantern compass anchor signal beacon"
)
VOCABULARY: tuple[str, ...] = tuple(_WORDS.split())
_DEFAULTS: dict[str, Any] = {
    "delay_per_token": 0.0,
    "first_token_delay": 0.0,
    "load_delay": 0.0,
    "fail_load": False,
    "fail_after_tokens": None,
    "max_concurrency": 64,
    "context_length": 2048,
    "stop_after": 48,
    "dim": 32,
    "image_tokens": 4,
    "encode_delay": 0.0,
    "echo": False,
    "live_adapters": True,
}


class FakeBackend(base.ModelBackend):
    """Deterministic, instant (or delayed on purpose) stand-in for a real engine."""

    kind = "fake"
    supports_live_adapters = True  # unless started with live_adapters=false (load_adapter then refuses)
    supported_parameters = frozenset(
        {
            "tools", "tool_choice", "parallel_tool_calls", "seed", "presence_penalty", "frequency_penalty",
            "repetition_penalty", "top_k", "min_p", "logit_bias", "logprobs", "top_logprobs",
        }
    )  # fmt: skip

    def __init__(self, config: base.BackendConfig) -> None:
        super().__init__(config)
        unknown = set(config.options) - set(_DEFAULTS) - _IGNORED_SERVE_OPTIONS
        extra = base.parse_key_value_args(config.extra_args)
        unknown |= set(extra) - set(_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown fake backend options: {', '.join(sorted(unknown))}")
        self.options: dict[str, Any] = {**_DEFAULTS, **_known(config.options), **extra}
        self.loaded = False
        self._adapters: dict[str, str] = dict(config.adapters)
        # Observed by in-process tests: how many streams ended early and tokens produced in total.
        self.cancelled_streams = 0
        self.tokens_generated = 0

    @property
    def capabilities(self) -> frozenset[llmserver_api.Capability]:
        return self.config.capabilities or frozenset(llmserver_api.Capability)

    @property
    def max_concurrency(self) -> int:
        return int(self.options["max_concurrency"])

    @property
    def context_length(self) -> int | None:
        return int(self.options["context_length"])

    @property
    def vocab_size(self) -> int | None:
        return len(VOCABULARY)

    async def load(self) -> None:
        await asyncio.sleep(float(self.options["load_delay"]))
        if self.options["fail_load"]:
            raise base.BackendError("fake backend asked to fail its load (fail_load=true)")
        self.loaded = True

    async def unload(self) -> None:
        self.loaded = False

    @property
    def adapters(self) -> tuple[str, ...]:
        return tuple(self._adapters)

    def _require_live_adapters(self) -> None:
        if not self.options["live_adapters"]:
            raise base.UnsupportedRequest(
                "the fake backend was started with live_adapters=false: adapters load only at start"
            )

    async def load_adapter(self, name: str, path: str) -> None:
        self._require_live_adapters()
        self._adapters[name] = path

    async def unload_adapter(self, name: str) -> None:
        self._require_live_adapters()
        if self._adapters.pop(name, None) is None:
            raise base.UnsupportedRequest(f"the adapter {name!r} is not loaded")

    def _adapter_key(self, key: str, params: base.SamplingParams) -> str:
        """The generation key under `params.adapter` (the base model's key when None)."""
        if params.adapter is None:
            return key
        if params.adapter not in self._adapters:
            raise base.UnsupportedRequest(f"the adapter {params.adapter!r} is not loaded")
        return hashlib.sha256(f"{key}:adapter:{params.adapter}".encode()).hexdigest()

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN.findall(text))

    def check_parameters(self, options: Mapping[str, object]) -> None:
        super().check_parameters(options)
        if options.get("tool_choice", "auto") not in ("auto", "none"):
            raise base.UnsupportedParameter("tool_choice", "the fake engine cannot constrain decoding to a tool call")

    def render_chat(self, messages: list[base.ChatMessage], tools: tuple[Mapping[str, Any], ...] = ()) -> str:
        """The fake chat template: one `<|role|>` header line per message, then the reply's (tools,
        when given, first as a `<|tools|>` JSON line)."""
        head = f"<|tools|>\n{json.dumps(list(tools))}\n" if tools else ""
        return head + "".join(f"<|{m.role}|>\n{m.content}\n" for m in messages) + "<|assistant|>\n"

    def chat(self, messages: list[base.ChatMessage], params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        images = [image for message in messages for image in message.images]
        if images and llmserver_api.Capability.VISION not in self.capabilities:
            raise base.UnsupportedRequest("the fake model was configured without Vision")
        prompt = self.render_chat(messages, params.tools)
        n_prompt = self.count_tokens(prompt) + len(images) * int(self.options["image_tokens"])
        digest = hashlib.sha256(prompt.encode())
        for image in images:
            digest.update(image.data)
        script = _script(messages[-1].content) if self.options["echo"] else None
        return self._generate(digest.hexdigest(), n_prompt, params, param="messages", script=script)

    def complete(self, prompt: str, params: base.SamplingParams) -> AsyncIterator[base.Delta]:
        key = hashlib.sha256(prompt.encode()).hexdigest()
        return self._generate(key, self.count_tokens(prompt), params, param="prompt")

    def _check_context(self, n_prompt: int, max_tokens: int | None, param: str) -> None:
        limit = int(self.options["context_length"])
        wanted = n_prompt + (max_tokens or 0)
        if n_prompt >= limit or wanted > limit:
            raise base.ContextLengthExceeded(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{wanted} tokens ({n_prompt} in the {param}, {max_tokens or 0} in the completion)."
            )

    def _generate(
        self, key: str, n_prompt: int, params: base.SamplingParams, param: str, script: list[str] | None = None
    ) -> AsyncIterator[base.Delta]:
        # Checked before the stream starts so the server can answer 400 instead of a broken stream.
        self._check_context(n_prompt, params.max_tokens, param)
        return self._stream(self._adapter_key(key, params), n_prompt, params, script)

    async def _stream(
        self, key: str, n_prompt: int, params: base.SamplingParams, script: list[str] | None = None
    ) -> AsyncIterator[base.Delta]:
        rng = random.Random(f"{key}:{params.seed}")
        limit = int(self.options["context_length"]) - n_prompt
        max_tokens = min(params.max_tokens or limit, limit)
        natural_end = int(self.options["stop_after"]) if script is None else len(script)
        fail_after = self.options["fail_after_tokens"]
        delay = float(self.options["delay_per_token"])
        produced = 0
        processed = fake_sampling.needed(params)
        model = random.Random(key)  # the "model" behind the processed path: the same whatever the seed
        generated: list[int] = []
        finished = False
        try:
            await asyncio.sleep(float(self.options["first_token_delay"]))
            while True:
                if fail_after is not None and produced >= int(fail_after):
                    raise base.BackendError(f"fake engine failure after {produced} tokens (internal detail)")
                if produced and delay:
                    await asyncio.sleep(delay)
                logprobs: tuple[base.TokenLogprob, ...] = ()
                if script is not None:
                    word = script[produced]
                elif processed:
                    index, logprobs = fake_sampling.choose(
                        model, rng, VOCABULARY, params, generated, first=not produced
                    )
                    generated.append(index)
                    word = VOCABULARY[index]
                else:
                    word = rng.choice(VOCABULARY)
                produced += 1
                self.tokens_generated += 1
                finish = "length" if produced >= max_tokens else "stop" if produced >= natural_end else None
                text = word if produced == 1 or script is not None else " " + word
                yield base.Delta(text, n_prompt, produced, finish, logprobs=logprobs)
                if finish is not None:
                    finished = True
                    return
        finally:
            if not finished:
                self.cancelled_streams += 1

    async def _encode_delay(self) -> None:
        delay = float(self.options["encode_delay"])
        if delay:
            await threads.run(None, time.sleep, delay)

    def _vector(self, text: str) -> tuple[list[float], int]:
        dim = int(self.options["dim"])
        vector = [0.0] * dim
        tokens = _TOKEN.findall(text.lower())
        for token in tokens:
            digest = hashlib.sha1(token.encode()).digest()
            vector[digest[0] % dim] += 1.0 if digest[1] % 2 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            vector[0], norm = 1.0, 1.0
        return [v / norm for v in vector], len(tokens)

    async def embed(self, texts: list[str]) -> base.Embeddings:
        if llmserver_api.Capability.EMBEDDINGS not in self.capabilities:
            raise base.UnsupportedRequest("the fake model was configured without Embeddings")
        await self._encode_delay()
        pairs = [self._vector(text) for text in texts]
        return base.Embeddings(vectors=[v for v, _ in pairs], prompt_tokens=sum(n for _, n in pairs))

    async def rerank(self, query: str, documents: list[str]) -> base.RerankScores:
        if llmserver_api.Capability.RERANK not in self.capabilities:
            raise base.UnsupportedRequest("the fake model was configured without Rerank")
        await self._encode_delay()
        q, q_tokens = self._vector(query)
        scores: list[float] = []
        tokens = 0
        for document in documents:
            d, d_tokens = self._vector(document)
            scores.append(sum(a * b for a, b in zip(q, d)))
            tokens += q_tokens + d_tokens
        return base.RerankScores(scores=scores, prompt_tokens=tokens)


def _script(text: str) -> list[str]:
    """`text` as the fake's tokens, each with the whitespace before it (joined, they are `text`)."""
    pieces = re.findall(r"\s*(?:\w+|[^\w\s])", text)
    tail = text[len("".join(pieces)) :]
    if tail and pieces:
        pieces[-1] += tail
    return pieces or [text]


# Engine flags the server passes to every backend; the fake accepts and ignores them.
_IGNORED_SERVE_OPTIONS = {
    "n_gpu_layers", "n_ctx", "n_batch", "n_threads", "tensor_parallel_size", "gpu_memory_utilization",
    "max_model_len", "dtype", "load_in_4bit", "load_in_8bit", "max_kv_size", "max_tokens",
}  # fmt: skip


def _known(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in _DEFAULTS}
