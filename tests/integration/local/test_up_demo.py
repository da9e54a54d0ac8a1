"""`llmserver up --demo` as a user runs it: a real subprocess serving the tiny generated GGUF through
the real gateway, driven with the official openai SDK; steered with list-loaded / unload-model /
load-model --local; and Ctrl-C (SIGINT) leaves no process behind."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import openai
import pytest

from testkit import local_up

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_up.Up]:
    with local_up.Up(tmp_path_factory.mktemp("demo"), "--demo") as up:
        up.wait_phase("tiny", "Ready")
        up.wait_routed("tiny")
        yield up


def chat(up: local_up.Up, text: str = "Hello") -> openai.types.chat.ChatCompletion:
    return up.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": text}], max_tokens=8, temperature=0
    )


def test_chat_through_the_gateway(demo: local_up.Up) -> None:
    reply = chat(demo)
    assert reply.model == "tiny"
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.usage is not None and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


def test_streaming_through_the_gateway(demo: local_up.Up) -> None:
    stream = demo.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Tell me a story"}], max_tokens=12, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len(deltas) > 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert demo.client().models.list().data[0].id == "tiny"


def test_list_loaded_local(demo: local_up.Up) -> None:
    result = local_up.llmserver("list-loaded", "--local", "--state-dir", str(demo.state_dir), "-o", "json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["name"], row["model"], row["backend"], row["phase"], row["ready"]) == ("tiny", "tiny", "llama-cpp", "Ready", "1/1")
    assert row["endpoint"] == f"{demo.base_url}/v1"


def test_unload_then_load_model_local(demo: local_up.Up) -> None:
    pid = demo.server("tiny")["pid"]  # type: ignore[index]
    unloaded = local_up.llmserver("unload-model", "tiny", "--local", "--state-dir", str(demo.state_dir))
    assert unloaded.returncode == 0, unloaded.stderr
    assert "Unloaded" in unloaded.stdout
    assert not local_up.alive(pid)
    server = demo.wait_phase("tiny", "Unloaded")
    assert server["pid"] is None
    demo.wait_status("tiny", 503)
    with pytest.raises(openai.APIStatusError) as caught:
        chat(demo)
    assert caught.value.status_code == 503
    loaded = local_up.llmserver("load-model", "tiny", "--local", "--state-dir", str(demo.state_dir))
    assert loaded.returncode == 0, loaded.stderr
    demo.wait_phase("tiny", "Ready")
    demo.wait_routed("tiny")
    assert chat(demo).usage.completion_tokens > 0  # type: ignore[union-attr]


def test_unknown_local_server_is_a_clear_error(demo: local_up.Up) -> None:
    result = local_up.llmserver("unload-model", "nope", "--local", "--state-dir", str(demo.state_dir))
    assert result.returncode == 1 and "no server or model named 'nope'" in result.stderr


def test_ctrl_c_stops_everything(demo: local_up.Up) -> None:
    """Last in this module: interrupts the shared `llmserver up`."""
    before = local_up.descendants(demo.popen.pid)
    assert len(before) >= 2  # the gateway and the tiny runtime at least
    code, leftovers = demo.interrupt()
    assert code == 0, demo.output()[-3000:]
    assert leftovers == set()
    assert not (demo.state_dir / "state.json").exists()
    assert "stopped" in demo.output()


def test_list_loaded_local_when_nothing_runs(tmp_path: pathlib.Path) -> None:
    result = local_up.llmserver("list-loaded", "--local", "--state-dir", str(tmp_path))
    assert result.returncode == 1 and "no `llmserver up` is running" in result.stderr
