"""`llmserver up -f FILE` with several servers side by side: a llama-cpp tiny GGUF from a local
`source.pvc` folder next to the manifest, a proxy to a fake provider (key from the env var named
after the Secret key), a server whose model is broken and a proxy whose key is missing: the broken
ones are shown Failed with their error while the others serve. Bad manifests start nothing."""

from __future__ import annotations

import json
import pathlib
import shutil
import socket
import textwrap
import urllib.request
from collections.abc import Iterator

import pytest
from testkit import fake_upstreams, local_up, models, ports

pytestmark = pytest.mark.timeout(300)

PROVIDER_KEY = "sk-provider-secret-123"


def manifest(provider_url: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: tiny}}
        spec:
          model: tiny-local
          backend: llama-cpp
          source: {{pvc: {{claimName: ./models, path: tiny.gguf}}}}
          llamaCpp: {{nCtx: 512}}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {{name: provider}}
        stringData: {{provider-key: not-read-locally}}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: gpt}}
        spec:
          model: gpt-4o-mini
          mode: Proxy
          proxy: {{url: "{provider_url}/v1", upstreamModel: up-model, apiKeySecretRef: {{name: provider, key: provider-key}}}}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: broken}}
        spec:
          model: broken
          backend: llama-cpp
          source: {{pvc: {{claimName: ./models, path: broken.gguf}}}}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: nokey}}
        spec:
          model: nokey
          mode: Proxy
          proxy: {{url: "{provider_url}/v1", apiKeySecretRef: {{name: other, key: missing-key}}}}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: parked}}
        spec:
          model: parked
          replicas: 0
          source: {{pvc: {{claimName: ./models, path: tiny.gguf}}}}
    """)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fake_upstreams.Proc]:
    proc = fake_upstreams.start_fake(tmp_path_factory.mktemp("provider"), "prov", "--require-key", PROVIDER_KEY,
                                     "--served-model", "up-model")  # fmt: skip
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory, provider: fake_upstreams.Proc) -> Iterator[local_up.Up]:
    tmp = tmp_path_factory.mktemp("two")
    (tmp / "models").mkdir()
    shutil.copy(models.tiny_model_path("gguf"), tmp / "models" / "tiny.gguf")
    (tmp / "models" / "broken.gguf").write_bytes(b"GGUF this is not a model")
    (tmp / "servers.yaml").write_text(manifest(provider.url))
    with local_up.Up(tmp, "-f", str(tmp / "servers.yaml"), env={"PROVIDER_KEY": PROVIDER_KEY}) as up:
        up.wait_phase("tiny", "Ready")
        up.wait_phase("gpt", "Ready")
        up.wait_routed("tiny-local")
        yield up


def test_tiny_gguf_and_proxy_served_side_by_side(side_by_side: local_up.Up, provider: fake_upstreams.Proc) -> None:
    client = side_by_side.client()
    local = client.chat.completions.create(model="tiny-local", messages=[{"role": "user", "content": "Hi"}], max_tokens=6)
    assert local.model == "tiny-local" and local.usage is not None and local.usage.completion_tokens > 0
    proxied = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert proxied.choices[0].message.content == "prov-0 prov-1 prov-2"
    with urllib.request.urlopen(f"{provider.url}/fake/stats", timeout=5) as response:
        stats = json.loads(response.read())
    assert stats["models"] == ["up-model"] and stats["auth_ok"] == 1 and stats["auth_bad"] == 0
    streamed = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "prov-0 prov-1 prov-2"
    assert {m.id for m in client.models.list().data} >= {"tiny-local", "gpt-4o-mini"}


def test_failures_are_shown_and_the_others_keep_serving(side_by_side: local_up.Up) -> None:
    broken = side_by_side.wait_phase("broken", "Failed")
    assert "runtime exited with code" in broken["message"]
    nokey = side_by_side.wait_phase("nokey", "Failed")
    assert "set env MISSING_KEY" in nokey["message"]
    parked = side_by_side.wait_phase("parked", "Unloaded")
    assert "spec.replicas is 0" in parked["message"] and parked["pid"] is None
    assert side_by_side.status_of("broken") == 503 and side_by_side.status_of("parked") == 503
    assert side_by_side.status_of("tiny-local") == 200
    listed = local_up.llmserver("list-loaded", "--local", "--state-dir", str(side_by_side.state_dir), "-o", "json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert {name: row["phase"] for name, row in rows.items()} == {"tiny": "Ready", "gpt": "Ready", "broken": "Failed", "nokey": "Failed", "parked": "Unloaded"}
    assert PROVIDER_KEY not in side_by_side.output() and PROVIDER_KEY not in listed.stdout
    assert PROVIDER_KEY not in (side_by_side.state_dir / "gateway.yaml").read_text()


def test_bad_manifests_are_refused_before_anything_starts(tmp_path: pathlib.Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(manifest("http://127.0.0.1:9").split("---")[0])
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").write_bytes(b"")
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: p}
        spec: {model: p, mode: Proxy}
        ---
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {name: q}
        spec: {model: q, backend: vllm, llamaCpp: {nCtx: 5}, source: {huggingFace: {repo: a/b}}}
    """))
    port = ports.free_port()
    state_dir = tmp_path / "state"
    result = local_up.llmserver("up", "-f", str(good), "-f", str(bad), "--port", str(port), "--state-dir", str(state_dir),
                                "--cache-dir", str(tmp_path / "cache"), "--no-live")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nothing was started" in result.stderr
    assert f"{bad} (document 1): spec: spec.proxy" in result.stderr
    assert f"{bad} (document 2): spec: spec.llamaCpp is set but spec.backend is neither llama-cpp nor auto" in result.stderr
    assert str(good) not in result.stderr and "2 problem(s)" in result.stderr
    assert not state_dir.exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # no gateway was started
