"""The seed's local workflow for real: `llmserver up` without -f serves the local set and follows
it while it runs. A tiny GGUF added with `add-server --local` is chatted with through the gateway
(official openai SDK) without restarting `up`; `remove-server --local` stops it; `clear-cache`
refuses what the running `up` serves (the --demo model lives in the cache) and frees the rest."""

from __future__ import annotations

import pathlib
import shutil

import openai
import pytest

from testkit import local_up, models

pytestmark = pytest.mark.timeout(420)


def test_add_chat_remove_and_clear_cache_while_up_runs(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "models" / "llama-2-7b.Q4_K_M.gguf"  # the seed's file name, a tiny random GGUF inside
    model.parent.mkdir()
    shutil.copy(models.tiny_model_path("gguf"), model)
    with local_up.Up(tmp_path, "--demo") as up:
        dirs = ["--state-dir", str(up.state_dir)]
        cache = ["--cache-dir", str(up.cache_dir)]
        up.wait_phase("tiny", "Ready")

        added = local_up.llmserver("add-server", "--local", "llama", "--model-path", str(model), "--backend", "llama-cpp",
                                   *dirs, env=up.env)  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert "added llama" in added.stderr and "picks it up" in added.stderr
        ready = up.wait_phase("llama", "Ready", timeout=120)
        up.wait_routed("llama")
        reply = up.client().chat.completions.create(
            model="llama", messages=[{"role": "user", "content": "Hello"}], max_tokens=6, temperature=0
        )
        assert reply.model == "llama" and reply.usage is not None and reply.usage.completion_tokens > 0
        assert "local set: serving llama" in up.output()

        junk = up.cache_dir / "hf" / "Org" / "Old" / "main" / "model.gguf"
        junk.parent.mkdir(parents=True)
        junk.write_bytes(b"x" * 4096)
        refused = local_up.llmserver("clear-cache", "tiny", *cache, *dirs, env=up.env)
        assert refused.returncode == 1 and "used by tiny of the running `llmserver up`" in refused.stderr
        everything = local_up.llmserver("clear-cache", "--all", *cache, *dirs, env=up.env)
        assert everything.returncode == 1, everything.stderr
        assert "kept" in everything.stderr and "freed 4096 bytes" in everything.stdout
        assert not junk.exists() and (up.cache_dir / "demo").is_dir() and model.exists()  # local files are never ours

        removed = local_up.llmserver("remove-server", "--local", "llama", *dirs, env=up.env)
        assert removed.returncode == 0, removed.stderr
        up.wait_status("llama", 404, timeout=30)
        assert up.server("llama") is None and not local_up.alive(ready["pid"])
        assert up.client().chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        ).model == "tiny"  # the --demo server was never the set's to touch
        with pytest.raises(openai.NotFoundError):
            up.client().chat.completions.create(model="llama", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
        code, leftovers = up.interrupt()
        assert code == 0 and leftovers == set()
    assert not (up.state_dir / "cache-in-use.json").exists()


def test_up_with_no_arguments_serves_the_set_it_finds(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "models" / "tiny.gguf"
    model.parent.mkdir()
    shutil.copy(models.tiny_model_path("gguf"), model)
    state = ["--state-dir", str(tmp_path / "state")]
    added = local_up.llmserver("add-server", "--local", "mine", "--model-path", str(model), *state)
    assert added.returncode == 0 and "serve it with: llmserver up" in added.stderr
    with local_up.Up(tmp_path) as up:
        up.wait_phase("mine", "Ready", timeout=120)
        up.wait_routed("mine")
        code, leftovers = up.interrupt()
        assert code == 0 and leftovers == set()
