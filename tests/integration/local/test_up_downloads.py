"""Local mode's download step, run by the real supervisor with a stand-in downloader.

Model hubs are unreachable here, so the interpreter local mode launches is a small wrapper
(testkit.local_up.stand_in_downloader): `-m llmserver_runtime download ...` writes the tiny GGUF
where the downloader would, or fails like a missing repo; gateway and serve run for real. What is tested is local mode's part: Downloading with
progress, then the runtime on the downloaded file, a failed download shown as Failed while the
other server serves, and no second download once the file is cached."""

from __future__ import annotations

import asyncio
import io
import json
import pathlib
import textwrap
import time

import click
import openai
import pytest
import rich.console

from llmserver_operator.commands import download_model
from llmserver_operator.local import manifests, settings, state, supervisor
from testkit import local_up, models, runtime_server

pytestmark = pytest.mark.timeout(300)

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
    wrapper, calls = local_up.stand_in_downloader(tmp_path, models.tiny_model_path("gguf"))
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


def test_download_model_command_fills_the_local_cache(tmp_path: pathlib.Path) -> None:
    wrapper, calls = local_up.stand_in_downloader(tmp_path, models.tiny_model_path("gguf"))
    console = rich.console.Console(file=io.StringIO())
    path = download_model.download_local("org/tiny-gguf", "tiny.gguf", "v2", False, tmp_path / "cache", console, python=str(wrapper))
    assert path == tmp_path / "cache" / "hf/org/tiny-gguf/v2/tiny.gguf" and path.stat().st_size > 0
    path.write_bytes(b"stale")
    forced = download_model.download_local("org/tiny-gguf", "tiny.gguf", "v2", True, tmp_path / "cache", console, python=str(wrapper))
    assert forced.read_bytes() == pathlib.Path(models.tiny_model_path("gguf")).read_bytes()
    with pytest.raises(click.ClickException) as caught:
        download_model.download_local("org/missing", "x.gguf", "main", False, tmp_path / "cache", console, python=str(wrapper))
    assert "404 Repository Not Found" in caught.value.message
    assert len(calls.read_text().splitlines()) == 3
