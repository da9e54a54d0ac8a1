"""Issue 21's adapter acceptance through the gateway, for real: two `llmserver-runtime serve`
replicas of one tiny model (transformers with peft adapters, llama-cpp with GGUF LoRA adapters)
behind a real `llmserver-gateway --config`, called with the official openai SDK.

Replica R1 holds adapters `a` and `b`, R2 only `a`. Greedy answers of the base model, `tiny:a` and
`tiny:b` differ; `tiny:nope` is a 404 model_not_found; the gateway's /v1/models lists the adapters
with their parent; and every request for `tiny:b` reaches R1 only (each runtime's own request
counter on /metrics tells which replica answered)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import pathlib
import time
from collections.abc import Callable, Iterator

import openai
import pytest

from testkit import fake_upstreams, runtime_server

pytestmark = pytest.mark.timeout(600)

MODEL = "tiny"
PROMPT = "Once upon a time"


@dataclasses.dataclass
class Served:
    """Two replicas behind one gateway, and the SDK client pointed at the gateway."""

    holding_b: runtime_server.RuntimeServer
    without_b: runtime_server.RuntimeServer
    client: openai.OpenAI


def _engine_setup(engine: str, root: pathlib.Path, gguf: str, hf: str,
                  write_lora: Callable[[str, str, pathlib.Path, int], str]) -> tuple[str, dict[str, str], list[str]]:
    """(model path, adapter paths a/b, engine flags) for `engine`."""
    if engine == "llama-cpp":
        made = {name: write_lora("gguf-lora", gguf, root / f"{name}.gguf", seed) for name, seed in (("a", 1), ("b", 2))}
        return gguf, made, ["--n-ctx", "512", "--n-threads", "1"]
    made = {name: write_lora("hf-lora", hf, root / name, seed) for name, seed in (("a", 1), ("b", 2))}
    return hf, made, []


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `check`; a 503 (no replica known to hold the adapter yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(openai.InternalServerError):
            if check():
                return
        assert time.monotonic() < deadline, f"not reached in {timeout}s: {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module", params=["transformers", "llama-cpp"])
def served(request: pytest.FixtureRequest, workdir: pathlib.Path, tiny_gguf: str, tiny_hf_causal: str,
           static_gateway: Callable[[dict[str, object]], fake_upstreams.Proc],
           write_lora: Callable[[str, str, pathlib.Path, int], str]) -> Iterator[Served]:
    engine: str = request.param
    root = workdir / f"{engine}-loras"
    root.mkdir()
    model, made, flags = _engine_setup(engine, root, tiny_gguf, tiny_hf_causal, write_lora)
    with contextlib.ExitStack() as stack:
        holding_b = stack.enter_context(runtime_server.start(
            workdir, engine, model, MODEL, *flags, "--adapter", f"a={made['a']}", "--adapter", f"b={made['b']}",
            ready_timeout=300))
        without_b = stack.enter_context(runtime_server.start(
            workdir, engine, model, MODEL, *flags, "--adapter", f"a={made['a']}", ready_timeout=300))
        gateway = static_gateway({"models": [{
            "name": MODEL, "adapters": ["a", "b"],
            "endpoints": [{"url": holding_b.url, "ready": True}, {"url": without_b.url, "ready": True}]}]})
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        stack.callback(client.close)
        _until(lambda: bool(_greedy(client, f"{MODEL}:b")), 30, "the gateway to learn where b is")
        yield Served(holding_b, without_b, client)


def _greedy(client: openai.OpenAI, model: str) -> str:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=12, temperature=0)
    assert answer.model == model
    return answer.choices[0].text


def _completions(server: runtime_server.RuntimeServer) -> float:
    """Completion requests this runtime answered (any status), from its own /metrics."""
    return sum(value for key, value in server.metrics().items()
               if key.startswith("llmserver_requests_total{") and "completions" in key)


def test_base_and_each_adapter_answer_differently(served: Served) -> None:
    base, a, b = (_greedy(served.client, name) for name in (MODEL, f"{MODEL}:a", f"{MODEL}:b"))
    assert len({base, a, b}) == 3, (base, a, b)
    assert _greedy(served.client, f"{MODEL}:a") == a  # greedy, whichever replica answers
    assert _greedy(served.client, MODEL) == base


def test_an_unknown_adapter_is_404_model_not_found(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        _greedy(served.client, f"{MODEL}:nope")
    assert missing.value.code == "model_not_found"


def test_models_list_the_adapters_with_their_parent(served: Served) -> None:
    listed = {model.id: model.model_dump() for model in served.client.models.list()}
    assert set(listed) == {MODEL, f"{MODEL}:a", f"{MODEL}:b"}
    assert listed[MODEL].get("parent") is None
    assert listed[f"{MODEL}:a"].get("parent") == listed[f"{MODEL}:b"].get("parent") == MODEL, listed
    assert served.client.models.retrieve(f"{MODEL}:b").model_dump().get("parent") == MODEL


def test_every_request_for_b_goes_to_the_replica_holding_it(served: Served) -> None:
    before = _completions(served.holding_b), _completions(served.without_b)
    for _ in range(8):
        _greedy(served.client, f"{MODEL}:b")
    after = _completions(served.holding_b), _completions(served.without_b)
    assert (after[0] - before[0], after[1] - before[1]) == (8, 0)


def test_a_held_by_both_replicas_uses_both(served: Served) -> None:
    """The counterpart: the counters do show the second replica when the gateway uses it."""
    before = _completions(served.holding_b), _completions(served.without_b)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # pairs in flight: least-outstanding spreads them
        list(pool.map(lambda _: _greedy(served.client, f"{MODEL}:a"), range(8)))
    after = _completions(served.holding_b), _completions(served.without_b)
    assert after[0] - before[0] + after[1] - before[1] == 8
    assert after[1] > before[1], "the replica without b never answered a"
