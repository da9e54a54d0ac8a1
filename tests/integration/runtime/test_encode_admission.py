"""Issue 19: embeddings and rerank hold their admission slot until the engine's work really ends.

The fake engine blocks a worker thread for ENCODE_S on every embed/rerank, as llama.cpp or torch
do; nothing can interrupt that thread. With one slot and no queue, the slot must stay taken (429
for everyone else) after the client gave up or the request timed out, until the thread is done."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator

import httpx
import pytest
from testkit import runtime_server

pytestmark = pytest.mark.timeout(120)

ENCODE_S = 4.0  # the worker's time per embed/rerank
TIMEOUT_S = 2  # --request-timeout: shorter than the worker
EMBED = {"model": "tiny", "input": "hello"}
RERANK = {"model": "tiny", "query": "q", "documents": ["d"]}
PROBE = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}  # instant on the fake


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    tmp: pathlib.Path = tmp_path_factory.mktemp("one-slot")
    with runtime_server.start(
        tmp,
        "fake",
        "unused",
        "tiny",
        "--max-concurrency",
        "1",
        "--max-queue",
        "0",
        "--request-timeout",
        str(TIMEOUT_S),
        extra=[f"encode_delay={ENCODE_S}"],
    ) as server:
        yield server


def admitted_after(server: runtime_server.RuntimeServer, started: float, deadline_s: float = 30) -> float:
    """Seconds from `started` until a probe was let in; every probe before must be a busy slot's 429."""
    while time.monotonic() - started < deadline_s:
        sent = time.monotonic()
        response = httpx.post(server.url + "/v1/chat/completions", json=PROBE, timeout=30)
        if response.status_code == 200:
            return sent - started
        assert response.status_code == 429, response.text
        time.sleep(0.1)
    raise AssertionError(f"the slot never came back within {deadline_s}s")


@pytest.mark.parametrize(("path", "body"), [("/v1/embeddings", EMBED), ("/v1/rerank", RERANK)])
def test_a_disconnected_request_holds_its_slot_until_the_worker_finishes(
    one_slot: runtime_server.RuntimeServer, path: str, body: dict
) -> None:
    admitted_after(one_slot, time.monotonic())  # earlier tests' workers are done
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(one_slot.url + path, json=body, timeout=httpx.Timeout(10, read=0.3))  # the client leaves
    # Freed on disconnect (0.3 s) or on the timeout (2 s) would let a probe in before the worker ends.
    assert admitted_after(one_slot, started) >= ENCODE_S - 0.3
    assert one_slot.proc.poll() is None


@pytest.mark.parametrize(("path", "body"), [("/v1/embeddings", EMBED), ("/v1/rerank", RERANK)])
def test_a_timed_out_request_holds_its_slot_until_the_worker_finishes(
    one_slot: runtime_server.RuntimeServer, path: str, body: dict
) -> None:
    admitted_after(one_slot, time.monotonic())
    started = time.monotonic()
    response = httpx.post(one_slot.url + path, json=body, timeout=30)
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "timeout"
    assert admitted_after(one_slot, started) >= ENCODE_S - 0.3


def test_images_are_decoded_only_once_admitted(one_slot: runtime_server.RuntimeServer) -> None:
    """A chat request with undecodable image data, sent while the slot is taken, is a 429: it
    queued before any decoding (decoding first would have answered 400 at once)."""
    admitted_after(one_slot, time.monotonic())
    bad_image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!not-base64!!!"}}
    chat = {"model": "tiny", "messages": [{"role": "user", "content": [bad_image]}], "max_tokens": 1}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(one_slot.url + "/v1/embeddings", json=EMBED, timeout=httpx.Timeout(10, read=0.3))
    busy = httpx.post(one_slot.url + "/v1/chat/completions", json=chat, timeout=30)
    assert busy.status_code == 429, busy.text
    admitted_after(one_slot, time.monotonic())
    refused = httpx.post(one_slot.url + "/v1/chat/completions", json=chat, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_image", refused.text
    assert refused.json()["error"]["param"] == "messages[0].content[0].image_url"
