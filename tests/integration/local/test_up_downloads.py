"""Local mode's download step, run by the real supervisor with a stand-in downloader.

Model hubs are unreachable here, so the interpreter local mode launches is a small wrapper: for
`-m llmserver_runtime download ...` it writes the tiny GGUF where the downloader would (the cache
layout of llmserver_api.paths) in slow chunks, or fails like a missing repo; every other command
(gateway, serve) runs the real interpreter. What is tested is local mode's part: Downloading with
progress, then the runtime on the downloaded file, a failed download shown as Failed while the
other server serves, and no second download once the file is cached."""

from __future__ import annotations

import asyncio
import json
import pathlib
import stat
import sys
import textwrap
import time

import openai
import pytest

from llmserver_operator.local import manifests, settings, state, supervisor
from testkit import models, runtime_server

pytestmark = pytest.mark.timeout(300)

WRAPPER = """\
#!{python}
import json, os, pathlib, sys, time
args = sys.argv[1:]
if args[:3] == ["-m", "llmserver_runtime", "download"]:
    opts = dict(zip(args[3::2], args[4::2]))
    with open({calls!r}, "a") as log:
        log.write(json.dumps(opts) + "\\n")
    if opts["--repo"] == "org/missing":
        print("download failed: 404 Repository Not Found for url https://huggingface.co/org/missing", flush=True)
        sys.exit(1)
    owner, name = opts["--repo"].split("/")
    target = pathlib.Path(opts["--cache-dir"], "hf", owner, name, opts["--revision"], opts["--file"])
    target.parent.mkdir(parents=True, exist_ok=True)
    data = pathlib.Path({gguf!r}).read_bytes()
    partial = target.with_name(target.name + ".incomplete")
    with partial.open("wb") as out:
        for start in range(0, len(data), len(data) // 4 + 1):
            out.write(data[start:start + len(data) // 4 + 1]); out.flush(); time.sleep(0.6)
    partial.rename(target)
    sys.exit(0)
os.execv({python!r}, [{python!r}, *args])
"""


def manifest(tmp: pathlib.Path) -> pathlib.Path:
    path = tmp / "hf.yaml"
    path.write_text(textwrap.dedent("""\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: fetched}
        spec:
          model: fetched
          backend: llama-cpp
          source: {huggingFace: {repo: org/tiny-gguf, file: tiny.gguf}}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: missing}
        spec:
          model: missing
          backend: llama-cpp
          source: {huggingFace: {repo: org/missing, file: x.gguf}}
    """))
    return path


async def serve_until(sup: supervisor.Supervisor, check: object, progress: list[int]) -> list[tuple[str, str]]:
    """Runs the supervisor, records phase changes and download progress, calls `check` once both
    servers settled, then stops it as Ctrl-C would."""
    phases: list[tuple[str, str]] = []

    def record(snapshot: state.LocalState) -> None:
        for server in snapshot.servers:
            if (server.name, server.phase) not in phases:
                phases.append((server.name, server.phase))
            if server.name == "fetched" and server.phase == "Downloading" and server.download_bytes:
                progress.append(server.download_bytes)

    sup.on_change = record
    stop = asyncio.Event()
    runner = asyncio.create_task(sup.run(stop))
    try:
        for _ in range(1200):
            current = {s.name: s.phase for s in sup.snapshot().servers}
            if current.get("fetched") == "Ready" and current.get("missing") == "Failed":
                break
            if runner.done():
                runner.result()
            await asyncio.sleep(0.1)
        await asyncio.to_thread(check)  # type: ignore[arg-type]
    finally:
        stop.set()
        await asyncio.wait_for(runner, 60)
    return phases


async def test_download_then_serve_and_failed_download_shown(tmp_path: pathlib.Path) -> None:
    calls = tmp_path / "calls.jsonl"
    wrapper = tmp_path / "python"
    wrapper.write_text(WRAPPER.format(python=sys.executable, calls=str(calls), gguf=models.tiny_model_path("gguf")))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    paths = settings.LocalSettings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    loaded = manifests.load([manifest(tmp_path)])
    port = runtime_server.free_port()
    environ = runtime_server.env()

    def chat() -> None:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        for _ in range(100):  # the gateway re-reads its config twice a second
            try:
                reply = client.chat.completions.create(model="fetched", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
                assert reply.usage is not None and reply.usage.completion_tokens > 0
                return
            except openai.APIStatusError as error:
                assert error.status_code == 503
                time.sleep(0.1)
        raise AssertionError("never routed")

    sup = supervisor.Supervisor(loaded, paths, supervisor.Options(port=port), python=str(wrapper), environ=environ)
    progress: list[int] = []
    phases = await serve_until(sup, chat, progress)
    assert progress and progress == sorted(progress)  # bytes on disk, growing while it downloads
    fetched = [phase for name, phase in phases if name == "fetched"]
    assert fetched.index("Downloading") < fetched.index("Starting") < fetched.index("Ready")
    final = {s.name: s for s in sup.snapshot().servers}
    assert "404 Repository Not Found" in final["missing"].message
    assert (paths.cache_dir / "hf/org/tiny-gguf/main/tiny.gguf").stat().st_size > 0
    assert [json.loads(line)["--repo"] for line in calls.read_text().splitlines()] == ["org/tiny-gguf", "org/missing"]

    # a second run finds the file in the cache: no download for it, straight to Starting
    again = supervisor.Supervisor(manifests.load([manifest(tmp_path)]), paths, supervisor.Options(port=port),
                                  python=str(wrapper), environ=environ)  # fmt: skip
    phases = await serve_until(again, chat, [])
    assert "Downloading" not in [phase for name, phase in phases if name == "fetched"]
    assert [json.loads(line)["--repo"] for line in calls.read_text().splitlines()].count("org/tiny-gguf") == 1
    assert not (paths.state_dir / "state.json").exists()
