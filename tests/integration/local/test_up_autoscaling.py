"""spec.autoscaling in `llmserver up`, end to end with real processes and the openai SDK: a model
left at zero starts cold (listed `Cold`), the gateway holds its first request while it loads and
then answers it, it scales to zero again after scaleDownDelaySeconds without requests, and a
stream wakes it too; the hold bounds answer 429 (maxHeldRequests) and 503 (holdSeconds) with
Retry-After; a cold model with a `fallback` (a Proxy server to a loopback fake provider) is
answered by it at once, with `x-llmserver-served-by`, until it is loaded, then by itself.
`unload-model --local` switches autoscaling off until `load-model --local`."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import textwrap
import time
from collections.abc import Iterator

import openai
import pytest
from testkit import fake_upstreams, local_up, models, runtime_server, slow_start

pytestmark = pytest.mark.timeout(300)

SERVED_BY = "x-llmserver-served-by"
SLOW_START = pathlib.Path(slow_start.__file__).parent  # "brief" loads for 6 s longer than its 1 s hold


def _model(name: str, autoscaling: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: {name}}}
        spec:
          model: {name}
          backend: llama-cpp
          replicas: 0
          source: {{pvc: {{claimName: ./models, path: tiny.gguf}}}}
          llamaCpp: {{nCtx: 256}}
          autoscaling: {{minReplicas: 0, maxReplicas: 1, {autoscaling}}}
    """)


def manifests(provider_url: str) -> str:
    helper = textwrap.dedent(f"""\
        apiVersion: serving.llmserver.dev/v1alpha1
        kind: LLMServer
        metadata: {{name: helper}}
        spec: {{model: helper, mode: Proxy, proxy: {{url: "{provider_url}/v1"}}}}
    """)
    return "---\n".join([
        _model("cold", "scaleDownDelaySeconds: 3, holdSeconds: 120"),
        _model("brief", "scaleDownDelaySeconds: 600, holdSeconds: 1"),
        _model("capped", "scaleDownDelaySeconds: 600, maxHeldRequests: 0"),
        _model("main", "scaleDownDelaySeconds: 3, fallback: helper"),
        helper,
    ])


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fake_upstreams.Proc]:
    proc = fake_upstreams.start_fake(tmp_path_factory.mktemp("fallback"), "fb", "--served-model", "helper")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, provider: fake_upstreams.Proc) -> Iterator[local_up.Up]:
    tmp = tmp_path_factory.mktemp("elastic")
    (tmp / "models").mkdir()
    shutil.copy(models.tiny_model_path("gguf"), tmp / "models" / "tiny.gguf")
    (tmp / "servers.yaml").write_text(manifests(provider.url))
    pythonpath = os.pathsep.join([str(SLOW_START), runtime_server.env()["PYTHONPATH"]])
    slow_brief = {"PYTHONPATH": pythonpath, "LLMSERVER_TEST_SLOW_START": "brief:6"}
    with local_up.Up(tmp, "-f", str(tmp / "servers.yaml"), env=slow_brief) as running:
        running.wait_phase("helper", "Ready")
        yield running


def _chat(client: openai.OpenAI, model: str) -> tuple[str, str | None]:
    """The reply's text and the model named by x-llmserver-served-by (None: the model itself)."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    reply = raw.parse()
    return reply.choices[0].message.content or "", raw.headers.get(SERVED_BY)


def _listed(up: local_up.Up) -> dict[str, dict[str, str]]:
    listed = local_up.llmserver("list-loaded", "--local", "--state-dir", str(up.state_dir), "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row for row in json.loads(listed.stdout)}


def test_a_cold_model_holds_its_request_while_it_loads_then_scales_to_zero_again(up: local_up.Up) -> None:
    cold = up.wait_phase("cold", "Unloaded")
    assert cold["pid"] is None and "minReplicas 0" in cold["message"]
    row = _listed(up)["cold"]
    assert (row["phase"], row["ready"], row["autoscaling"]) == ("Cold", "0/0", "0..1")
    began = time.monotonic()
    text, served_by = _chat(up.client(), "cold")  # held by the gateway (no 503), answered once loaded
    held = time.monotonic() - began
    print(f"held request answered after {held:.2f}s (cold start of a tiny GGUF runtime)")
    assert served_by is None and isinstance(text, str)
    loaded = up.wait_phase("cold", "Ready", timeout=5)
    assert local_up.alive(loaded["pid"])
    idle = up.wait_phase("cold", "Unloaded", timeout=60)  # scaleDownDelaySeconds 3 without requests
    assert "idle for" in idle["message"] and not local_up.alive(loaded["pid"])
    assert _listed(up)["cold"]["phase"] == "Cold"
    chunks = up.client().chat.completions.create(
        model="cold", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True)
    assert isinstance("".join(c.choices[0].delta.content or "" for c in chunks if c.choices), str)
    assert up.wait_phase("cold", "Ready", timeout=5)["pid"] != loaded["pid"]


def test_the_hold_timeout_is_a_503_and_the_bound_a_429_with_retry_after(up: local_up.Up) -> None:
    client = up.client()
    up.wait_phase("brief", "Unloaded")
    with pytest.raises(openai.APIStatusError) as timed_out:  # holdSeconds 1; brief starts >= 6 s
        _chat(client, "brief")
    assert timed_out.value.status_code == 503 and timed_out.value.response.headers.get("retry-after")
    up.wait_phase("brief", "Ready", timeout=120)  # the wake call loaded it meanwhile
    up.wait_status("brief", 200)
    up.wait_phase("capped", "Unloaded")
    with pytest.raises(openai.APIStatusError) as refused:  # maxHeldRequests 0
        _chat(client, "capped")
    assert refused.value.status_code == 429 and refused.value.response.headers.get("retry-after")


def test_the_fallback_answers_while_cold_and_traffic_returns_once_loaded(up: local_up.Up) -> None:
    client = up.client()
    up.wait_phase("main", "Unloaded")
    text, served_by = _chat(client, "main")
    assert (text, served_by) == ("fb-0 fb-1 fb-2", "helper")  # at once, from the Proxy's provider
    up.wait_phase("main", "Ready", timeout=120)  # and the request woke it
    deadline = time.monotonic() + 30
    while served_by is not None and time.monotonic() < deadline:  # the gateway re-reads its config
        text, served_by = _chat(client, "main")
    assert served_by is None and not text.startswith("fb-")


def test_unload_model_switches_autoscaling_off_until_load_model(up: local_up.Up) -> None:
    up.wait_phase("main", "Unloaded", timeout=60)
    unloaded = local_up.llmserver("unload-model", "main", "--local", "--state-dir", str(up.state_dir))
    assert unloaded.returncode == 0, unloaded.stderr
    assert _listed(up)["main"]["phase"] == "Unloaded"  # off, not cold
    up.wait_status("main", 503)  # no hold, no fallback, not woken
    assert up.server("main")["phase"] == "Unloaded"  # type: ignore[index]
    loaded = local_up.llmserver("load-model", "main", "--local", "--state-dir", str(up.state_dir))
    assert loaded.returncode == 0, loaded.stderr
    up.wait_phase("main", "Ready", timeout=120)
    up.wait_status("main", 200)
