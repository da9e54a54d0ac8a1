"""LoRA adapters (peft) on the transformers backend, for real on the tiny model: an adapter changes
the answer and matches peft's own model, two adapters differ, the base answers as before any
adapter loaded, adapters load and unload while the model serves, and requests for different
adapters running at once each answer as they do alone (never one forward pass for two adapters)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator

import pytest
import torch
import transformers

from llmserver_backends import base, registry
from testkit import lora_adapters, models

pytestmark = pytest.mark.timeout(600)

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("loras")
    base_path = models.tiny_model_path("hf-causal")
    return {name: lora_adapters.hf_lora(base_path, root / name, seed) for name, seed in (("one", 1), ("two", 2))}


def _load(adapters: dict[str, str] | None = None) -> base.ModelBackend:
    config = base.BackendConfig(
        model_path=models.tiny_model_path("hf-causal"), served_model_name="m", adapters=adapters or {}
    )
    backend = registry.create("transformers", config)
    asyncio.run(backend.load())
    return backend


@pytest.fixture(scope="module")
def plain() -> Iterator[base.ModelBackend]:
    backend = _load()
    yield backend
    asyncio.run(backend.unload())


@pytest.fixture(scope="module")
def adapted(loras) -> Iterator[base.ModelBackend]:
    backend = _load(loras)
    yield backend
    asyncio.run(backend.unload())


def _params(adapter: str | None, **extra: object) -> base.SamplingParams:
    return base.SamplingParams(max_tokens=16, temperature=0.0, adapter=adapter, **extra)


async def _text(backend: base.ModelBackend, params: base.SamplingParams, prompt: str = PROMPT) -> str:
    return "".join([delta.text async for delta in backend.complete(prompt, params)])


def _answer(backend: base.ModelBackend, adapter: str | None, prompt: str = PROMPT) -> str:
    return asyncio.run(_text(backend, _params(adapter), prompt))


def _peft_greedy(adapter_path: str, prompt: str, steps: int) -> str:
    """peft's own model and transformers' generate(), as the reference for an adapter's answer."""
    import peft

    path = models.tiny_model_path("hf-causal")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(path), adapter_path).eval()
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**ids, max_new_tokens=steps, do_sample=False)
    return tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_adapters_loaded_at_start_change_the_answer(adapted, plain, loras) -> None:
    assert adapted.adapters == ("one", "two")
    assert type(adapted).supports_live_adapters
    base_answer, one, two = _answer(adapted, None), _answer(adapted, "one"), _answer(adapted, "two")
    assert one != base_answer and two != base_answer and one != two
    assert base_answer == _answer(plain, None)  # loading adapters left the base model as it was
    assert one == _peft_greedy(loras["one"], PROMPT, 16)


def test_concurrent_requests_for_different_adapters_answer_as_alone(adapted) -> None:
    prompts = (PROMPT, "Hello there", PROMPT, "The river", PROMPT)
    names = ("one", None, "two", "one", None)

    async def run() -> tuple[list[str], list[str]]:
        alone = [await _text(adapted, _params(name), prompt) for name, prompt in zip(names, prompts, strict=True)]
        together = await asyncio.gather(
            *(_text(adapted, _params(name), prompt) for name, prompt in zip(names, prompts, strict=True))
        )
        return alone, list(together)

    before = adapted.batch_stats
    alone, together = asyncio.run(run())
    assert together == alone
    # Two requests each for "one" and the base, one for "two": passes of two rows happened, and
    # none larger (five rows in one pass would mean adapters were mixed).
    assert before.largest_batch <= 1 and adapted.batch_stats.largest_batch == 2


def test_adapters_load_and_unload_while_the_model_serves(loras, tmp_path: pathlib.Path) -> None:
    backend = _load()
    try:
        base_answer = _answer(backend, None)
        assert backend.adapters == ()
        asyncio.run(backend.load_adapter("two", loras["two"]))
        asyncio.run(backend.load_adapter("one", loras["one"]))
        assert backend.adapters == ("two", "one")
        one = _answer(backend, "one")
        assert one != base_answer and _answer(backend, "two") != one
        assert _answer(backend, None) == base_answer
        asyncio.run(backend.unload_adapter("two"))
        assert backend.adapters == ("one",)
        with pytest.raises(base.UnsupportedRequest, match="two"):
            _answer(backend, "two")
        assert _answer(backend, "one") == one
        asyncio.run(backend.unload_adapter("one"))
        assert backend.adapters == ()
        assert _answer(backend, None) == base_answer  # unwrapped again: the plain base model
        asyncio.run(backend.load_adapter("one", loras["one"]))  # and it can be wrapped again
        assert _answer(backend, "one") == one
        with pytest.raises(base.UnsupportedRequest, match="not a peft adapter"):
            asyncio.run(backend.load_adapter("bad", str(tmp_path)))
        with pytest.raises(base.UnsupportedRequest, match="no adapter named"):
            asyncio.run(backend.unload_adapter("never-loaded"))
    finally:
        asyncio.run(backend.unload())


def test_a_running_request_keeps_its_answer_while_an_adapter_loads(loras) -> None:
    backend = _load()
    try:
        bias = {token: -100.0 for token in backend._stop_ids}  # noqa: SLF001 - run to max_tokens
        params = base.SamplingParams(max_tokens=30, temperature=0.0, logit_bias=bias)

        async def run() -> tuple[str, str]:
            alone = await _text(backend, params)
            stream = backend.complete(PROMPT, params)
            first = [await anext(stream)]
            await backend.load_adapter("one", loras["one"])
            rest = [delta async for delta in stream]
            return alone, "".join(delta.text for delta in first + rest)

        alone, across = asyncio.run(run())
        assert across == alone
    finally:
        asyncio.run(backend.unload())
