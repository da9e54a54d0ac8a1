"""The gateway's bounds on inputs and upstreams (issue 19): body size before reading, auth before
parsing, JSON depth and lone surrogates as 400s, a concurrency limit answering 429, and a trickling
upstream that cannot hold the connection pool (or the gateway) hostage for a healthy model."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import pathlib
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.timeout(120)

KEY = "sk-limits-1"
LIMIT = 1024 * 1024  # the body limit the gateway runs with here


def _rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _post(url: str, body: bytes | Iterator[bytes], headers: dict[str, str] | None = None,
          path: str = "/v1/chat/completions", timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """POST with http.client; a generator body goes chunked. A server that answers before the whole
    body is sent (and closes) is fine: the answer is read after the send fails."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest("POST", path)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            conn.putheader(name, value)
        chunked = not isinstance(body, bytes)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if chunked:
                for part in body:
                    conn.send(b"%x\r\n%s\r\n" % (len(part), part))
                conn.send(b"0\r\n\r\n")
            else:
                conn.send(body)
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def _error(body: bytes) -> dict:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


@pytest.fixture(scope="module")
def gateway(start_gateway, start_fakes, listen):
    replica = start_fakes("L1")["L1"]
    provider = listen("ok")
    config = {"models": [
        {"name": "tiny", "endpoints": [{"url": replica.url}]},
        {"name": "prov", "upstream": {"url": provider.url + "/v1", "model": "up"}},
    ]}
    proc, _ = start_gateway(config, {"LLMSERVER_GATEWAY_MAX_BODY_BYTES": str(LIMIT)})
    return proc


@pytest.fixture(scope="module")
def secured(start_gateway, start_fakes):
    replica = start_fakes("L2")["L2"]
    config = {"models": [{"name": "tiny", "endpoints": [{"url": replica.url}]}], "apiKeys": [{"key": KEY}]}
    proc, _ = start_gateway(config, {"LLMSERVER_GATEWAY_MAX_BODY_BYTES": str(LIMIT)})
    return proc


def _nested(total: int) -> Iterator[bytes]:
    """A ~`total`-byte body of `[[],[],...]` (the shape that expands ~22x when parsed), in 1 MiB parts."""
    yield b'{"model":"tiny","input":['
    part = b"[]," * (1024 * 1024 // 3)
    for _ in range(total // len(part)):
        yield part
    yield b"[]]}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_60_mb_nested_body_is_refused_413_without_the_gateway_growing(gateway, chunked: bool) -> None:
    before = _rss_kib(gateway.popen.pid)
    body: bytes | Iterator[bytes] = _nested(60 * 1024 * 1024) if chunked else b"".join(_nested(60 * 1024 * 1024))
    status, _, reply = _post(gateway.url, body)
    assert status == 413
    assert _error(reply)["code"] == "request_too_large"
    grown_mib = (_rss_kib(gateway.popen.pid) - before) / 1024
    assert grown_mib < 100, f"gateway RSS grew by {grown_mib:.0f} MiB"
    status, _, _ = _post(gateway.url, json.dumps({"model": "tiny", "messages": []}).encode())
    assert status == 200  # and it still serves


def test_a_body_just_under_the_limit_is_served(gateway) -> None:
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * (LIMIT - 200)}]}).encode()
    assert len(body) <= LIMIT
    status, _, _ = _post(gateway.url, body)
    assert status == 200


@pytest.mark.parametrize("model", ["tiny", "prov"], ids=["self-hosted", "proxy"])
@pytest.mark.parametrize(("body", "code", "param"), [
    (b'{"model":"M","messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "json_too_deep", None),
    (b'{"model":"M","x":' + b"[" * 65 + b"]" * 65 + b"}", "json_too_deep", None),
    (b'{"model":"M","messages":[{"role":"user","content":"a\\ud800b"}]}', "invalid_unicode", "messages[0].content"),
    (b'{"model":"M","messages":[{"role":"user","content":"\\udc00"}]}', "invalid_unicode", "messages[0].content"),
    (b'{"model":"M","messages":[], "\\ud800": 1}', "invalid_unicode", None),
    (b'{"model":"M","messages":[{"content":"\xff\xfe"}]}', "invalid_encoding", None),
    (b'{"model":"M","messages":[', None, None),
    (b'["model"]', None, None),
    (b"", None, None),
], ids=["deep", "depth-65", "lone-high", "lone-low", "lone-in-key", "not-utf8", "truncated", "not-object", "empty"])
def test_malformed_bodies_are_400_in_the_openai_shape(gateway, model, body, code, param) -> None:
    status, _, reply = _post(gateway.url, body.replace(b'"M"', json.dumps(model).encode()))
    assert status == 400, reply[:300]
    error = _error(reply)
    assert (error["code"], error["param"]) == (code, param)


def test_a_valid_surrogate_pair_and_depth_64_pass(gateway) -> None:
    pair = b'{"model":"tiny","messages":[{"role":"user","content":"\\ud83d\\ude00"}],"x":'
    body = pair + b"[" * 63 + b"]" * 63 + b"}"
    status, _, reply = _post(gateway.url, body)
    assert status == 200, reply[:300]


def test_a_slow_body_is_refused_408_and_frees_its_slot(start_gateway, start_fakes) -> None:
    replica = start_fakes("L3")["L3"]
    config = {"models": [{"name": "tiny", "endpoints": [{"url": replica.url}]}]}
    gateway, _ = start_gateway(config, {"LLMSERVER_GATEWAY_BODY_TIMEOUT": "1",
                                        "LLMSERVER_GATEWAY_MAX_CONCURRENT_REQUESTS": "1"})

    def trickle() -> Iterator[bytes]:
        yield b'{"model":"tiny",'
        time.sleep(3)  # the gateway gave up after 1 s
        yield b'"messages":[]}'

    status, _, reply = _post(gateway.url, trickle())  # without the bound: a 200 after 3 s
    assert status == 408 and _error(reply)["code"] == "request_timeout"
    status, _, _ = _post(gateway.url, json.dumps({"model": "tiny", "messages": []}).encode())
    assert status == 200  # the one slot is free again


def test_auth_comes_before_size_and_parsing(secured) -> None:
    status, headers, reply = _post(secured.url, b"[" * 100_000)  # no key: malformed body never parsed
    assert status == 401 and _error(reply)["code"] == "invalid_api_key"
    status, _, _ = _post(secured.url, b"x" * (LIMIT + 1))
    assert status == 401
    status, _, reply = _post(secured.url, b"x" * (LIMIT + 1), {"Authorization": f"Bearer {KEY}"})
    assert status == 413
    status, _, reply = _post(secured.url, b"[" * 100_000, {"Authorization": f"Bearer {KEY}"})
    assert status == 400 and _error(reply)["code"] == "json_too_deep"


def _stream_open(url: str, model: str) -> http.client.HTTPResponse:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    return conn.getresponse()


def test_a_trickling_upstream_does_not_block_a_healthy_model(start_gateway, start_fakes, listen) -> None:
    """Six streams held open by a trickling replica; the pool has 4 connections, 2 per endpoint.
    With one shared pool and no per-endpoint bound, the trickler would hold all 4 and the healthy
    model would wait until the streams end (a minute)."""
    healthy = start_fakes("H")["H"]
    slow = listen("trickle", gap=0.5)
    config = {"models": [{"name": "slow", "endpoints": [{"url": slow.url}]},
                         {"name": "healthy", "endpoints": [{"url": healthy.url}]}]}
    gateway, _ = start_gateway(config, {"LLMSERVER_GATEWAY_MAX_CONNECTIONS": "4",
                                        "LLMSERVER_GATEWAY_MAX_CONNECTIONS_PER_ENDPOINT": "2",
                                        "LLMSERVER_GATEWAY_POOL_TIMEOUT": "1"})
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        streams = [pool.submit(_stream_open, gateway.url, "slow") for _ in range(6)]
        deadline = time.monotonic() + 10
        while len(slow.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(slow.requests) == 2  # only two connections reach the trickler
        began = time.monotonic()
        status, _, reply = _post(gateway.url, json.dumps({"model": "healthy", "messages": []}).encode(), timeout=10)
        took = time.monotonic() - began
        assert status == 200, reply[:300]
        assert took < 3, f"the healthy model waited {took:.1f} s"
        answers = [s.result(timeout=20) for s in streams]
        statuses = sorted(a.status for a in answers)
        # Four waited for a connection past the pool timeout and were refused; two are streaming.
        assert statuses.count(200) == 2, statuses
        assert all(s >= 500 for s in statuses if s != 200), statuses
        for answer in answers:
            answer.close()


def test_the_concurrency_limit_answers_429_with_retry_after(start_gateway, listen) -> None:
    slow = listen("trickle", gap=0.5)
    ok = listen("ok")
    config = {"models": [{"name": "slow", "endpoints": [{"url": slow.url}]},
                         {"name": "ok", "endpoints": [{"url": ok.url}]}]}
    gateway, _ = start_gateway(config, {"LLMSERVER_GATEWAY_MAX_CONCURRENT_REQUESTS": "2",
                                        "LLMSERVER_GATEWAY_BUSY_RETRY_AFTER": "3"})
    held = [_stream_open(gateway.url, "slow") for _ in range(2)]
    try:
        assert [h.status for h in held] == [200, 200]
        status, headers, reply = _post(gateway.url, json.dumps({"model": "ok", "messages": []}).encode())
        assert status == 429 and headers.get("Retry-After") == "3"
        assert _error(reply)["code"] == "rate_limit_exceeded"
        assert ok.requests == []
    finally:
        for h in held:
            h.close()
    deadline = time.monotonic() + 10
    while True:  # the held streams end once the gateway notices their clients left
        status, _, _ = _post(gateway.url, json.dumps({"model": "ok", "messages": []}).encode())
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200


def test_an_upstream_answer_over_the_size_limit_ends_with_an_error(start_gateway, listen) -> None:
    big = listen("big")
    config = {"models": [{"name": "big", "endpoints": [{"url": big.url}]}]}
    gateway, _ = start_gateway(config, {"LLMSERVER_GATEWAY_MAX_RESPONSE_BYTES": str(64 * 1024)})
    answer = _stream_open(gateway.url, "big")
    assert answer.status == 200
    data = answer.read()  # ends: the gateway cut the stream
    assert len(data) < 80 * 1024  # what fit under the limit (possibly nothing), then the error event
    assert b"upstream_response_too_large" in data.rsplit(b"data: ", 1)[-1]
