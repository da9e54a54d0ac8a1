"""A LoRA adapter in the local set, served for real: `add-server --local --adapter NAME=PATH` on the
tiny transformers model, `llmserver up` downloads nothing (both are local folders) and starts the
runtime with `--adapter`, which serves `MODEL:NAME` (the openai SDK, on the runtime `up` started):
its greedy answer differs from the base model's, and an unknown adapter is a 404. Through the
gateway too, and after an idle unload an adapter request wakes the model (the gateway's adapter
probe of the wake endpoint does not)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import openai
import pytest

from testkit import local_up, models, runtime_server

pytestmark = pytest.mark.timeout(420)


def greedy(client: openai.OpenAI, model: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello there"}], max_tokens=12, temperature=0, seed=1
    )
    assert reply.model == model
    return reply.choices[0].message.content or ""


def test_a_local_adapter_is_served_as_model_colon_name(tmp_path: pathlib.Path) -> None:
    base = models.tiny_model_path("hf-causal")
    made = subprocess.run(
        [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", "hf-lora", "--base", base,
         "--out", str(tmp_path / "lora")],
        capture_output=True, text=True, timeout=300, env=runtime_server.env(), check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    lora = made.stdout.strip().splitlines()[-1]
    state = ["--state-dir", str(tmp_path / "state")]
    added = local_up.llmserver("add-server", "--local", "tiny-hf", "--model-path", base, "--backend", "transformers",
                               "--adapter", f"style={lora}", *state)  # fmt: skip
    assert added.returncode == 0, added.stderr
    with local_up.Up(tmp_path) as up:
        up.wait_phase("tiny-hf", "Ready", timeout=240)
        up.wait_routed("tiny-hf")
        port = up.server("tiny-hf")["port"]
        runtime = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
        listed = {model.id: model for model in runtime.models.list()}
        assert set(listed) == {"tiny-hf", "tiny-hf:style"}
        assert greedy(runtime, "tiny-hf:style") != greedy(runtime, "tiny-hf")
        with pytest.raises(openai.NotFoundError):
            greedy(runtime, "tiny-hf:nope")
        up.wait_routed("tiny-hf:style", timeout=30)  # the gateway learned it from the runtime's /v1/models
        gateway = up.client()
        assert greedy(gateway, "tiny-hf:style") == greedy(runtime, "tiny-hf:style")
        assert {"tiny-hf", "tiny-hf:style"} <= {model.id for model in gateway.models.list()}
        with pytest.raises(openai.NotFoundError):
            greedy(gateway, "tiny-hf:nope")
        code, leftovers = up.interrupt()
        assert code == 0 and leftovers == set()


def test_an_idle_unloaded_model_stays_down_until_an_adapter_request_wakes_it(tmp_path: pathlib.Path) -> None:
    base = models.tiny_model_path("hf-causal")
    made = subprocess.run(
        [sys.executable, "-m", "llmserver_runtime", "tiny-model", "--kind", "hf-lora", "--base", base,
         "--out", str(tmp_path / "lora")],
        capture_output=True, text=True, timeout=300, env=runtime_server.env(), check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    state = ["--state-dir", str(tmp_path / "state")]
    added = local_up.llmserver("add-server", "--local", "sleepy", "--model-path", base, "--backend", "transformers",
                               "--adapter", f"style={made.stdout.strip().splitlines()[-1]}", *state)  # fmt: skip
    assert added.returncode == 0, added.stderr
    probes = {"LLMSERVER_GATEWAY_ADAPTER_PROBE_SECONDS": "0.5"}
    with local_up.Up(tmp_path, "--idle-unload", "3", env=probes) as up:
        up.wait_phase("sleepy", "Ready", timeout=240)
        up.wait_phase("sleepy", "Unloaded", timeout=60)
        time.sleep(4)  # many probe rounds of the wake endpoint
        assert up.server("sleepy")["phase"] == "Unloaded"  # type: ignore[index]
        assert greedy(up.client(), "sleepy:style")  # the request wakes it and is answered
        assert up.server("sleepy")["phase"] == "Ready"  # type: ignore[index]
        code, leftovers = up.interrupt()
        assert code == 0 and leftovers == set()
