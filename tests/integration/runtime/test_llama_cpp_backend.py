"""The llama-cpp backend in-process on the tiny GGUF: detection, options, chat formats,
cancellation. (The HTTP surface is in test_llama_cpp.py.)"""

from __future__ import annotations

import time

import pytest
import llmserver_api
from llmserver_backends import base, registry
from testkit.models import tiny_gguf  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(120)

MESSAGES = [base.ChatMessage(role="user", content="Hello there")]


def _backend(path: str, *extra: str, **config: object) -> base.ModelBackend:
    options = {"n_ctx": 256, "n_threads": 1}
    return registry.create(
        "llama-cpp",
        base.BackendConfig(model_path=path, served_model_name="t", options=options, extra_args=extra, **config),  # type: ignore[arg-type]
    )


async def _run(stream) -> tuple[str, base.Delta]:  # type: ignore[no-untyped-def]
    text, last = "", None
    async for delta in stream:
        text, last = text + delta.text, delta
    assert last is not None
    return text, last


async def test_detects_text_generation_and_refuses_embeddings_it_was_not_loaded_for(tiny_gguf: str) -> None:  # noqa: F811
    backend = _backend(tiny_gguf)
    await backend.load()
    try:
        assert backend.capabilities == {llmserver_api.Capability.TEXT_GENERATION}
        assert backend.context_length == 256
        with pytest.raises(base.UnsupportedRequest, match="Embeddings"):
            await backend.embed(["x"])
        _, last = await _run(backend.complete("Hello", base.SamplingParams(max_tokens=3, temperature=0)))
        assert last.prompt_tokens == backend.count_tokens("Hello")
        assert last.at is not None
        await backend.unload()
        await backend.load()  # idle unload, then load again
        _, again = await _run(backend.complete("Hello", base.SamplingParams(max_tokens=3, temperature=0)))
        assert again.completion_tokens == last.completion_tokens
    finally:
        await backend.unload()


async def test_unsupported_capability_and_unknown_extra_args_fail_clearly(tiny_gguf: str) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="unknown llama_cpp.Llama arguments in extra args: no_such_option"):
        _backend(tiny_gguf, "no_such_option=1")
    backend = _backend(tiny_gguf, capabilities=frozenset({llmserver_api.Capability.VISION}))
    with pytest.raises(base.BackendError, match="does not support Vision"):
        await backend.load()


async def test_named_chat_format_overrides_the_gguf_template(tiny_gguf: str) -> None:  # noqa: F811
    default, llama2 = _backend(tiny_gguf), _backend(tiny_gguf, "chat_format=llama-2")
    await default.load()
    await llama2.load()
    try:
        params = base.SamplingParams(max_tokens=1, temperature=0)
        _, from_template = await _run(default.chat(MESSAGES, params))
        _, from_llama2 = await _run(llama2.chat(MESSAGES, params))
        chatml = "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
        assert from_template.prompt_tokens == default.count_tokens(chatml)
        assert from_llama2.prompt_tokens != from_template.prompt_tokens
    finally:
        await default.unload()
        await llama2.unload()


async def test_leaving_a_stream_early_frees_the_engine(tiny_gguf: str) -> None:  # noqa: F811
    backend = _backend(tiny_gguf)
    await backend.load()
    try:
        stream = backend.complete("Hello", base.SamplingParams(max_tokens=200, temperature=1.0, seed=1))
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        started = time.perf_counter()
        _, last = await _run(backend.complete("Hello", base.SamplingParams(max_tokens=2, temperature=0)))
        assert last.completion_tokens == 2
        assert time.perf_counter() - started < 5
    finally:
        await backend.unload()


async def test_seed_reproduces_sampling(tiny_gguf: str) -> None:  # noqa: F811
    backend = _backend(tiny_gguf)
    await backend.load()
    try:
        params = base.SamplingParams(max_tokens=30, temperature=1.0, seed=7)
        first, _ = await _run(backend.chat(MESSAGES, params))
        again, _ = await _run(backend.chat(MESSAGES, params))
        other, _ = await _run(backend.chat(MESSAGES, base.SamplingParams(max_tokens=30, temperature=1.0, seed=8)))
        assert first == again
        assert first != other
    finally:
        await backend.unload()
