"""GGUF LoRA adapters on the llama-cpp engine, for real: two adapters written by
`tiny-model --kind gguf-lora` for the tiny GGUF, served by `serve --adapter NAME=FILE` (openai SDK)
and driven in process to check that mixed adapters in flight never share a decode step."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest
from llmserver_backends import base, llama_cpp
from testkit import runtime_server
from testkit.models import tiny_gguf  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(300)

MODEL = "tiny"
PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: str) -> dict[str, str]:  # noqa: F811
    """Two GGUF LoRA adapters (seeds 1 and 2) written by the real command."""
    root = tmp_path_factory.mktemp("gguf-lora")
    written = {}
    for name, seed in (("poet", 1), ("coder", 2)):
        command = [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", "gguf-lora", "--base", tiny_gguf]
        command += ["--output", str(root / f"{name}.gguf"), "--seed", str(seed)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        written[name] = result.stdout.strip().splitlines()[-1]
        assert pathlib.Path(written[name]) == root / f"{name}.gguf"
    return written


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_gguf: str,  # noqa: F811
    adapters: dict[str, str],
) -> Iterator[runtime_server.RuntimeServer]:
    flags = [f"--adapter={name}={path}" for name, path in adapters.items()]
    tmp = tmp_path_factory.mktemp("llama-lora")
    with runtime_server.start(tmp, "llama-cpp", tiny_gguf, MODEL, "--n-ctx", "512", "--n-threads", "1", *flags) as up:
        yield up


def _complete(server: runtime_server.RuntimeServer, model: str) -> str:
    reply = server.client().completions.create(model=model, prompt=PROMPT, max_tokens=16, temperature=0.8, seed=7)
    assert reply.model == model
    return reply.choices[0].text


def test_each_adapter_changes_the_output_and_differs_from_the_other(server: runtime_server.RuntimeServer) -> None:
    base_text, poet, coder = (_complete(server, model) for model in (MODEL, f"{MODEL}:poet", f"{MODEL}:coder"))
    assert poet != base_text and coder != base_text and poet != coder
    assert _complete(server, f"{MODEL}:poet") == poet, "an adapter's output is reproducible with its seed"


def test_adapters_are_listed_and_an_unknown_one_is_404(server: runtime_server.RuntimeServer) -> None:
    listed = {model.id: model for model in server.client().models.list().data}
    assert {f"{MODEL}:poet", f"{MODEL}:coder"} <= set(listed)
    assert getattr(listed[f"{MODEL}:poet"], "parent", None) == MODEL
    with pytest.raises(openai.NotFoundError):
        _complete(server, f"{MODEL}:missing")


async def test_mixed_adapters_in_flight_each_get_their_solo_output(
    tiny_gguf: str,  # noqa: F811
    adapters: dict[str, str],
) -> None:
    config = base.BackendConfig(
        model_path=tiny_gguf, served_model_name=MODEL, options={"n_ctx": 512, "n_threads": 1, "parallel": 6},
        adapters=adapters,
    )  # fmt: skip
    engine = llama_cpp.LlamaCppBackend(config)
    await engine.load()

    async def run(adapter: str | None) -> str:
        params = base.SamplingParams(max_tokens=20, temperature=0.0, adapter=adapter)
        return "".join([delta.text async for delta in engine.complete(PROMPT, params)])

    try:
        order = [None, "poet", "coder", "coder", None, "poet"]
        alone = {adapter: await run(adapter) for adapter in (None, "poet", "coder")}
        assert len(set(alone.values())) == 3
        together = await asyncio.gather(*(run(adapter) for adapter in order))
        assert together == [alone[adapter] for adapter in order]
        with pytest.raises(base.UnsupportedRequest):
            await run("missing")
    finally:
        await engine.unload()
