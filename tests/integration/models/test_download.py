"""`llmserver-runtime download` as the download Job runs it, against a local Hub (testkit.hub_server)
that serves the tiny models' real files through the endpoints huggingface-hub calls."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from llmserver_api import paths
from testkit import emulator, hub_server, models

pytestmark = pytest.mark.timeout(180)

TOKEN = "hf_TopSecretToken0123456789"
BIG = "shard.bin"  # > huggingface-hub's 10 MB read chunk, so an interrupted body resumes with Range


def _files(path: str) -> dict[str, bytes]:
    root = pathlib.Path(path)
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def repos() -> dict[str, hub_server.HubRepo]:
    causal = _files(models.tiny_model_path("hf-causal"))
    gguf = pathlib.Path(models.tiny_model_path("gguf"))
    big = bytes(range(256)) * (24 * 1024 * 1024 // 256)
    return {
        "org/tiny": hub_server.HubRepo(causal),
        "org/tiny-gguf": hub_server.HubRepo({gguf.name: gguf.read_bytes(), "README.md": b"# tiny\n"}),
        "org/private": hub_server.HubRepo({"config.json": causal["config.json"]}, token=TOKEN),
        "org/sharded": hub_server.HubRepo({"config.json": causal["config.json"], BIG: big}),
    }


@pytest.fixture
def hub(repos: dict[str, hub_server.HubRepo]) -> Iterator[hub_server.HubServer]:
    with hub_server.HubServer(repos) as server:
        yield server


def download(hub_url: str, cache: pathlib.Path, *args: str, token: str | None = None,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": hub_url, "HF_HOME": str(cache.parent / "hf-home"), **(extra_env or {})})
    if token:
        env["HF_TOKEN"] = token
    argv = [sys.executable, "-m", "llmserver_runtime", "download", "--cache-dir", str(cache),
            "--retry-delay", "0", "--progress-interval", "0.1", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=150, env=env, check=False)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_snapshot_lands_in_the_cache_layout(hub: hub_server.HubServer, repos, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    result = download(hub.url, cache, "--repo", "org/tiny", "--revision", "main")
    assert result.returncode == 0, result.stderr
    target = cache / paths.huggingface_dir("org/tiny", "main")
    assert last_line(result) == str(target.resolve())
    assert _files(str(target)) == repos["org/tiny"].files
    assert "6/6 files" in result.stdout
    assert all(r.authorization is None for r in hub.requests)  # no token given, none sent


def test_single_file_downloads_only_that_file(hub: hub_server.HubServer, repos, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    name = next(n for n in repos["org/tiny-gguf"].files if n.endswith(".gguf"))
    result = download(hub.url, cache, "--repo", "org/tiny-gguf", "--file", name)
    assert result.returncode == 0, result.stderr
    served = cache / paths.huggingface_model_path("org/tiny-gguf", "main", name)
    assert last_line(result) == str(served.resolve())
    assert served.read_bytes() == repos["org/tiny-gguf"].files[name]
    assert not (served.parent / "README.md").exists()
    assert {r.path.rsplit("/", 1)[-1] for r in hub.requests if "/resolve/" in r.path} == {name}


def test_interrupted_transfer_resumes_with_a_range_request(hub: hub_server.HubServer, repos, tmp_path) -> None:
    cache = tmp_path / "models"
    hub.interrupt[BIG] = 1
    result = download(hub.url, cache, "--repo", "org/sharded")
    assert result.returncode == 0, result.stderr
    target = cache / paths.huggingface_dir("org/sharded", "main")
    assert (target / BIG).read_bytes() == repos["org/sharded"].files[BIG]
    gets = hub.gets(BIG)
    assert len(gets) == 2 and gets[0].range is None
    assert gets[1].range is not None and gets[1].range.startswith("bytes=") and gets[1].range != "bytes=0-"


def test_failed_run_reruns_only_the_missing_file(hub: hub_server.HubServer, repos, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    hub.fail["model.safetensors"] = 100
    failed = download(hub.url, cache, "--repo", "org/tiny", "--retries", "2")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        "download failed: the Hub answered HTTP 500; gave up after 2 attempts"
    )
    assert "attempt 1/2 failed" in failed.stdout
    hub.fail.clear()
    before = len(hub.requests)
    result = download(hub.url, cache, "--repo", "org/tiny")
    assert result.returncode == 0, result.stderr
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.requests[before:] if r.method == "GET" and "/resolve/" in r.path}
    assert fetched == {"model.safetensors"}
    assert _files(str(cache / paths.huggingface_dir("org/tiny", "main"))) == repos["org/tiny"].files


def test_complete_download_is_skipped_without_network(repos, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "models"
    with hub_server.HubServer(repos) as hub:
        first = download(hub.url, cache, "--repo", "org/tiny")
        assert first.returncode == 0, first.stderr
        url = hub.url
    again = download(url, cache, "--repo", "org/tiny", "--retries", "1")  # the hub is gone
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stdout
    assert last_line(again) == last_line(first)


def test_token_is_sent_but_never_shown(hub: hub_server.HubServer, tmp_path: pathlib.Path) -> None:
    ok = download(hub.url, tmp_path / "models", "--repo", "org/private", token=TOKEN)
    assert ok.returncode == 0, ok.stderr
    assert hub.requests and all(r.authorization == f"Bearer {TOKEN}" for r in hub.requests if "org/private" in r.path)
    termination = tmp_path / "termination-log"
    termination.write_text("")
    wrong = "hf_WrongToken9876543210"
    bad = download(hub.url, tmp_path / "other", "--repo", "org/private", "--termination-log", str(termination), token=wrong)
    assert bad.returncode == 1
    line = "download failed: authentication failed: the Hub rejected the token in HF_TOKEN"
    assert bad.stderr.strip().splitlines()[-1] == line
    assert termination.read_text().strip() == line
    for text in (ok.stdout, ok.stderr, bad.stdout, bad.stderr, termination.read_text()):
        assert TOKEN not in text and wrong not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo", "org/missing"], "repository org/missing not found (if it is private or gated, give a token"),
        (["--repo", "org/private"], "repository org/private not found (if it is private or gated, give a token"),
        (["--repo", "org/tiny", "--file", "nope.bin"], "file 'nope.bin' not found in org/tiny at revision 'main'"),
        (["--repo", "org/tiny", "--revision", "v9"], "revision 'v9' not found in org/tiny"),
    ],
)
def test_errors_are_one_clear_line(hub: hub_server.HubServer, tmp_path: pathlib.Path, args: list[str], message: str) -> None:
    termination = tmp_path / "termination-log"
    termination.write_text("")
    result = download(hub.url, tmp_path / "models", *args, "--termination-log", str(termination))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("download failed: " + message)
    assert termination.read_text().startswith("download failed: " + message)
    assert "Traceback" not in result.stderr


def test_progress_is_patched_into_the_llmserver(hub: hub_server.HubServer, repos, tmp_path: pathlib.Path) -> None:
    hub.throttle = 16 * 1024 * 1024  # ~1.5 s for the 24 MB shard: several samples while it runs
    server = {"apiVersion": "serving.llmserver.dev/v1alpha1", "kind": "LLMServer",
              "metadata": {"name": "sharded", "namespace": "models"},
              "spec": {"model": "sharded", "source": {"huggingFace": {"repo": "org/sharded"}}}}  # fmt: skip
    with emulator.KubeEmulator(crds=emulator.project_crds()) as kube:
        kube.create(server)
        result = download(hub.url, tmp_path / "models", "--repo", "org/sharded", "--report-to", "models/sharded",
                          "--report-interval", "0.2", extra_env={"KUBECONFIG": kube.kubeconfig})  # fmt: skip
        assert result.returncode == 0, result.stderr
        status = kube.get("serving.llmserver.dev/v1alpha1", "LLMServer", "sharded", "models")["status"]
        patches = [w for w in kube.writes() if w.method == "PATCH"]
    total = sum(len(c) for c in repos["org/sharded"].files.values())
    assert status["download"] == {"bytesDone": total, "bytesTotal": total, "filesDone": 2, "filesTotal": 2,
                                  "message": "complete"}  # fmt: skip
    assert len(patches) >= 2  # progress while running, then the final one
    assert all(p.path.endswith("/namespaces/models/llmservers/sharded/status") for p in patches)
    assert all(p.content_type.startswith("application/merge-patch+json") for p in patches)
    done = [int(line.split("[bytes=")[1].split("/")[0]) for line in result.stdout.splitlines() if "[bytes=" in line]
    assert done == sorted(done) and done[0] < total and done[-1] == total
