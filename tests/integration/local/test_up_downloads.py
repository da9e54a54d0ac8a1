"""Downloads in local mode with the real downloader (`llmserver-runtime download`) against a local
Hub (testkit.hub_server, via HF_ENDPOINT): `llmserver up` downloads a Hugging Face source into the
local cache with progress, serves it, shows a failed download as Failed while the other server
serves, and on the next start finds the cache complete without touching the Hub;
`llmserver download-model` fills the same cache, with --force starting over."""

from __future__ import annotations

import pathlib
import textwrap
import time
from collections.abc import Iterator

import pytest

from llmserver_api import paths
from testkit import hub_server, local_up, models, runtime_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def gguf() -> pathlib.Path:
    return pathlib.Path(models.tiny_model_path("gguf"))


@pytest.fixture
def hub(gguf: pathlib.Path) -> Iterator[hub_server.HubServer]:
    repos = {"org/tiny-gguf": hub_server.HubRepo({gguf.name: gguf.read_bytes(), "README.md": b"# tiny\n"})}
    with hub_server.HubServer(repos) as server:
        yield server


def hub_env(hub: hub_server.HubServer, tmp: pathlib.Path) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1"}


def manifest(tmp: pathlib.Path, file: str) -> pathlib.Path:
    path = tmp / "hf.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: fetched}}
        spec:
          model: fetched
          backend: llama-cpp
          source: {{huggingFace: {{repo: org/tiny-gguf, file: {file}}}}}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: missing}}
        spec:
          model: missing
          backend: llama-cpp
          source: {{huggingFace: {{repo: org/missing, file: x.gguf}}}}
    """))
    return path


def test_up_downloads_serves_and_reuses_the_cache(hub: hub_server.HubServer, gguf: pathlib.Path, tmp_path: pathlib.Path) -> None:
    hub.throttle = gguf.stat().st_size / 3  # about three seconds, so progress can be seen
    servers = manifest(tmp_path, gguf.name)
    with local_up.Up(tmp_path, "-f", str(servers), env=hub_env(hub, tmp_path)) as up:
        seen: list[tuple[int | None, int | None]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            server = up.server("fetched") or {}
            if server.get("phase") == "Downloading" and server.get("download_bytes") is not None:
                seen.append((server["download_bytes"], server["download_total"]))
            if server.get("phase") in ("Starting", "Ready", "Failed"):
                break
            time.sleep(0.1)
        up.wait_phase("fetched", "Ready")
        failed = up.wait_phase("missing", "Failed")
        assert failed["message"].startswith("download failed") and "org/missing" in failed["message"]
        up.wait_routed("fetched")
        reply = up.client().chat.completions.create(model="fetched", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        assert reply.usage is not None and reply.usage.completion_tokens > 0
        code, leftovers = up.interrupt()
        assert code == 0 and leftovers == set()
    assert seen and all(total == gguf.stat().st_size for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    served = tmp_path / "cache" / paths.huggingface_model_path("org/tiny-gguf", "main", gguf.name)
    assert served.read_bytes() == gguf.read_bytes()
    assert len(hub.gets(gguf.name)) == 1

    hub.stop()  # the next start (same cache folder) must not need the Hub for what is cached
    with local_up.Up(tmp_path, "-f", str(servers), env=hub_env(hub, tmp_path)) as up:
        up.wait_phase("fetched", "Ready")
        up.wait_routed("fetched")


def test_download_model_command(hub: hub_server.HubServer, gguf: pathlib.Path, tmp_path: pathlib.Path) -> None:
    env = runtime_server.env(**hub_env(hub, tmp_path))
    cache = tmp_path / "models"
    args = ("download-model", "org/tiny-gguf", "--file", gguf.name, "--cache-dir", str(cache))
    first = local_up.llmserver(*args, env=env)
    assert first.returncode == 0, first.stderr
    served = cache / paths.huggingface_model_path("org/tiny-gguf", "main", gguf.name)
    assert f"downloaded org/tiny-gguf → {served}" in first.stderr
    assert served.read_bytes() == gguf.read_bytes() and len(hub.gets(gguf.name)) == 1
    cached = local_up.llmserver(*args, env=env)
    assert cached.returncode == 0 and len(hub.gets(gguf.name)) == 1  # complete: not fetched again
    forced = local_up.llmserver(*args, "--force", env=env)
    assert forced.returncode == 0 and len(hub.gets(gguf.name)) == 2
    missing = local_up.llmserver("download-model", "org/missing", "--cache-dir", str(cache), env=env)
    assert missing.returncode == 1 and "download failed" in missing.stderr and "Traceback" not in missing.stderr
