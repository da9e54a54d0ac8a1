"""Idle unload and the LRU cap of `llmserver up`: an unloaded model is restarted by its next
request (the request waits in the wake-up proxy, then is answered), and `--max-loaded 1` keeps one
runtime resident, stopping the least recently used one."""

from __future__ import annotations

import pathlib
import shutil
import textwrap

import pytest

from testkit import local_up, models

pytestmark = pytest.mark.timeout(300)


def write_servers(tmp: pathlib.Path, names: list[str]) -> pathlib.Path:
    (tmp / "models").mkdir()
    shutil.copy(models.tiny_model_path("gguf"), tmp / "models" / "tiny.gguf")
    docs = [
        textwrap.dedent(f"""\
            apiVersion: serving.llmserver.dev/v1alpha1
            kind: LLMServer
            metadata: {{name: {name}}}
            spec:
              model: {name}
              backend: llama-cpp
              source: {{pvc: {{claimName: {tmp / 'models'}, path: tiny.gguf}}}}
        """)
        for name in names
    ]
    path = tmp / "servers.yaml"
    path.write_text("---\n".join(docs))
    return path


def ask(up: local_up.Up, model: str, stream: bool = False) -> str:
    client = up.client()
    messages = [{"role": "user", "content": "Hello"}]
    if stream:
        chunks = client.chat.completions.create(model=model, messages=messages, max_tokens=6, stream=True)  # type: ignore[arg-type]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=6)  # type: ignore[arg-type]
    assert reply.model == model and reply.usage is not None and reply.usage.completion_tokens > 0
    return reply.choices[0].message.content or ""


def test_idle_model_is_unloaded_and_the_next_request_restarts_it(tmp_path: pathlib.Path) -> None:
    servers = write_servers(tmp_path, ["sleepy"])
    with local_up.Up(tmp_path, "-f", str(servers), "--idle-unload", "3") as up:
        first = up.wait_phase("sleepy", "Ready")
        up.wait_routed("sleepy")
        idle = up.wait_phase("sleepy", "Unloaded", timeout=60)
        assert "idle for" in idle["message"] and "starts on the next request" in idle["message"]
        assert not local_up.alive(first["pid"])
        up.wait_status("sleepy", 200, timeout=120)  # answered by the restarted runtime (no 503 meanwhile)
        again = up.wait_phase("sleepy", "Ready", timeout=5)
        assert again["pid"] != first["pid"] and local_up.alive(again["pid"])
        ask(up, "sleepy")
        up.wait_phase("sleepy", "Unloaded", timeout=60)
        assert isinstance(ask(up, "sleepy", stream=True), str)  # a stream wakes it too
        code, leftovers = up.interrupt()
        assert code == 0 and leftovers == set()


def test_max_loaded_keeps_the_most_recently_used_resident(tmp_path: pathlib.Path) -> None:
    servers = write_servers(tmp_path, ["first", "second"])
    with local_up.Up(tmp_path, "-f", str(servers), "--max-loaded", "1") as up:
        up.wait_phase("first", "Ready")
        waiting = up.wait_phase("second", "Unloaded")
        assert "--max-loaded 1" in waiting["message"]
        up.wait_routed("first")
        ask(up, "second")
        assert up.wait_phase("second", "Ready", timeout=5)["pid"]
        evicted = up.wait_phase("first", "Unloaded", timeout=5)
        assert "least recently used" in evicted["message"] and evicted["pid"] is None
        ask(up, "first")
        up.wait_phase("second", "Unloaded", timeout=5)
        resident = [s for s in (up.state() or {})["servers"] if s["pid"]]
        assert [s["name"] for s in resident] == ["first"]
        code, leftovers = up.interrupt()
        assert code == 0 and leftovers == set()
