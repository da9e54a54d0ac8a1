"""The operator's adapter calls against the real runtime (`llmserver-runtime serve` with the fake
engine as a process on loopback): what the operator loads is served as `<model>:NAME`, answers
differently from the base model, is counted from /v1/models, and is gone after an unload; a path
outside the runtime's trusted tree and an engine that loads adapters only at start are refused by
name, and such an engine's start-time adapters are still counted.

(The kubelet simulator's process mode maps /models only in the command line, so the paths the
operator sends in a load body cannot resolve there: the whole CR → replica flow is covered by
test_adapters.py against a stand-in, and the HTTP contract here against the real runtime.)
"""

from __future__ import annotations

import pathlib

import openai
import pytest
from llmserver_operator import adapters
from testkit import runtime_server

pytestmark = pytest.mark.timeout(180)


def adapter_dirs(root: pathlib.Path, *names: str) -> dict[str, str]:
    out = {}
    for name in names:
        folder = root / "hf" / "acme" / f"{name}-lora" / "main"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
        out[name] = str(folder)
    return out


def reply(client: openai.OpenAI, model: str) -> str:
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello there"}],
                                            max_tokens=8, seed=1, temperature=0)
    return answer.choices[0].message.content or ""


def test_live_loads_are_served_counted_and_unloaded(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "cache"
    wanted = adapter_dirs(root, "sql", "poem")
    environment = runtime_server.env(LLMSERVER_ADAPTER_ROOT=str(root))
    with runtime_server.start(tmp_path, "fake", "unused", "tiny", environment=environment) as server:
        replica = adapters.Replica("127.0.0.1", server.port, "pod-a")
        sync = adapters.AdapterSync()
        result = sync.sync("tiny", wanted, [replica])
        assert (result.held, result.errors, result.incomplete) == ({"sql": 1, "poem": 1}, {}, False)
        client = server.client()
        listed = {m.id: getattr(m, "parent", None) for m in client.models.list().data}
        assert listed == {"tiny": None, "tiny:sql": "tiny", "tiny:poem": "tiny"}
        base, sql, poem = reply(client, "tiny"), reply(client, "tiny:sql"), reply(client, "tiny:poem")
        assert len({base, sql, poem}) == 3

        result = sync.sync("tiny", {"sql": wanted["sql"]}, [replica])
        assert result.held == {"sql": 1} and not result.unloading
        with pytest.raises(openai.NotFoundError):
            reply(client, "tiny:poem")
        assert sync.sync("tiny", {"sql": wanted["sql"]}, [replica], load=False).held == {"sql": 1}

        outside = tmp_path / "elsewhere"
        outside.mkdir()
        refused = sync.sync("tiny", {"sql": wanted["sql"], "evil": str(outside)}, [replica])
        assert "pod-a" in refused.errors["evil"] and "lora_path" in refused.errors["evil"]
        assert refused.held == {"sql": 1}


def test_start_time_adapters_are_counted_and_live_loads_refused(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "cache"
    wanted = adapter_dirs(root, "sql", "poem")
    environment = runtime_server.env(LLMSERVER_ADAPTER_ROOT=str(root))
    with runtime_server.start(tmp_path, "fake", "unused", "tiny", "--adapter", f"sql={wanted['sql']}",
                              extra=["live_adapters=false"], environment=environment) as server:
        replica = adapters.Replica("127.0.0.1", server.port, "pod-a")
        sync = adapters.AdapterSync()
        assert sync.sync("tiny", wanted, [replica], load=False).held == {"sql": 1}
        refused = sync.sync("tiny", wanted, [replica])
        assert refused.held == {"sql": 1} and "HTTP 400" in refused.errors["poem"]
