"""API keys and rate limits, proxy mode (model rewrite + provider key injection, key never in logs
or errors), per-endpoint keys for Mac runtimes, and static-config reload, all through the SDK."""

from __future__ import annotations

import json
import time
import urllib.request

import httpx
import openai
import pytest
import yaml

pytestmark = pytest.mark.timeout(120)

PROVIDER_KEY = "sk-provider-SECRET-4242"
WRONG_PROVIDER_KEY = "sk-wrong-literal-9999"
MAC_KEY = "mac-endpoint-key-7777"
TINY_KEY = "sk-tiny-key-1111"
ALL_KEY = "sk-all-key-2222"
SECRETS = (PROVIDER_KEY, WRONG_PROVIDER_KEY, MAC_KEY, TINY_KEY, ALL_KEY)


def _stats(replica) -> dict:
    with urllib.request.urlopen(replica.url + "/fake/stats", timeout=5) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def secured(start_fakes, start_gateway):
    plain = start_fakes("T")["T"]
    provider_args = ("--require-key", PROVIDER_KEY, "--served-model", "upstream-x")
    provider = start_fakes("provider", extra=provider_args)["provider"]
    mac = start_fakes("mac", extra=("--api-key", MAC_KEY))["mac"]
    config = {
        "models": [
            {"name": "tiny", "endpoints": [{"url": plain.url}]},
            {"name": "big", "endpoints": [{"url": plain.url}]},
            {"name": "ext", "upstream": {"url": provider.url + "/v1", "model": "upstream-x",
                                         "apiKeyEnv": "PROVIDER_KEY"}},
            {"name": "ext-misconfigured", "upstream": {"url": provider.url + "/v1", "model": "upstream-x",
                                                       "apiKey": WRONG_PROVIDER_KEY}},
            {"name": "mac", "endpoints": [{"url": mac.url, "apiKey": MAC_KEY}]},
        ],
        "apiKeys": [
            {"key": ALL_KEY},
            {"keyEnv": "TINY_KEY", "models": ["tiny"], "requestsPerMinute": 3},
        ],
    }
    gateway, _ = start_gateway(config, {"PROVIDER_KEY": PROVIDER_KEY, "TINY_KEY": TINY_KEY},
                               "--log-level", "debug")
    yield gateway, provider, mac


def _client(gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=30)


def _chat(client: openai.OpenAI, model: str, **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **kwargs)


def test_requests_without_a_valid_key_are_401(secured) -> None:
    gateway, _, _ = secured
    with pytest.raises(openai.AuthenticationError) as caught:
        _chat(_client(gateway, "sk-not-a-key"), "tiny")
    assert caught.value.body["code"] == "invalid_api_key"
    assert "sk-not-a-key" not in caught.value.response.text
    # The SDK refuses to send no key at all, so that case goes out as a bare HTTP request.
    bare = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "tiny", "messages": []}, timeout=10)
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        _client(gateway, "sk-not-a-key").models.list()


def test_a_key_limited_to_some_models_gets_403_for_others(secured) -> None:
    gateway, _, _ = secured
    tiny = _client(gateway, TINY_KEY)
    with pytest.raises(openai.PermissionDeniedError):
        _chat(tiny, "big")
    with pytest.raises(openai.PermissionDeniedError):
        _chat(tiny, "no-such-model")  # no hint whether a model it may not use exists
    assert [m.id for m in tiny.models.list()] == ["tiny"]
    assert tiny.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        tiny.models.retrieve("big")  # not its model: not even its existence is told
    assert sorted(m.id for m in _client(gateway, ALL_KEY).models.list()) == [
        "big", "ext", "ext-misconfigured", "mac", "tiny"]


def test_requests_per_minute_limit_answers_429_with_retry_after(secured) -> None:
    gateway, _, _ = secured
    tiny = _client(gateway, TINY_KEY)
    # 403s and /v1/models spend nothing, so the whole budget of 3 is left for this test.
    replies = [_chat(tiny, "tiny").choices[0].message.content for _ in range(3)]
    with pytest.raises(openai.RateLimitError) as caught:
        _chat(tiny, "tiny")
    limited = caught.value
    assert all(r.startswith("T-0") for r in replies)
    assert 1 <= int(limited.response.headers["Retry-After"]) <= 20
    assert limited.body["code"] == "rate_limit_exceeded"
    _chat(_client(gateway, ALL_KEY), "tiny")  # other keys are not affected


def test_proxy_mode_rewrites_the_model_and_injects_the_provider_key(secured) -> None:
    gateway, provider, _ = secured
    client = _client(gateway, ALL_KEY)
    before = _stats(provider)
    assert _chat(client, "ext").choices[0].message.content == "provider-0 provider-1 provider-2"
    streamed = "".join(c.choices[0].delta.content or "" for c in _chat(client, "ext", stream=True))
    assert streamed == "provider-0 provider-1 provider-2"
    stats = _stats(provider)
    assert stats["models"][len(before["models"]):] == ["upstream-x", "upstream-x"]
    # the caller's gateway key never reached it
    assert (stats["auth_ok"] - before["auth_ok"], stats["auth_bad"] - before["auth_bad"]) == (2, 0)


def test_a_provider_refusing_the_key_is_a_502_that_does_not_leak_it(secured) -> None:
    gateway, _, _ = secured
    with pytest.raises(openai.APIStatusError) as caught:
        _chat(_client(gateway, ALL_KEY), "ext-misconfigured")
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"
    assert all(secret not in caught.value.response.text for secret in SECRETS)


def test_mac_endpoints_get_their_own_key_as_bearer(secured) -> None:
    gateway, _, mac = secured
    before = _stats(mac)
    assert _chat(_client(gateway, ALL_KEY), "mac").choices[0].message.content.startswith("mac-0")
    after = _stats(mac)
    assert (after["auth_ok"] - before["auth_ok"], after["auth_bad"] - before["auth_bad"]) == (1, 0)


def test_no_key_ever_appears_in_the_gateway_log(secured) -> None:
    gateway, _, _ = secured
    # Every path that handles a key, so the log is checked after them whatever ran before.
    with pytest.raises(openai.AuthenticationError):
        _chat(_client(gateway, "sk-not-a-key"), "tiny")
    client = _client(gateway, ALL_KEY)
    for model in ("ext", "mac"):
        _chat(client, model)
    with pytest.raises(openai.APIStatusError):
        _chat(client, "ext-misconfigured")
    log = gateway.output()
    assert "gateway config" in log  # the log is real and verbose (debug level)
    assert "refused the gateway's API key" in log
    for secret in SECRETS:
        assert secret not in log


def test_static_config_reload(start_fakes, start_gateway) -> None:
    replica = start_fakes("Z")["Z"]
    gateway, path = start_gateway({"models": [{"name": "one", "endpoints": [{"url": replica.url}]}]})
    client = _client(gateway, "unused")
    assert [m.id for m in client.models.list()] == ["one"]

    path.write_text(yaml.safe_dump({"models": [
        {"name": "one", "endpoints": [{"url": replica.url}]},
        {"name": "two", "endpoints": [{"url": replica.url}]}]}))
    _until(lambda: [m.id for m in client.models.list()] == ["one", "two"])
    assert _chat(client, "two").choices[0].message.content.startswith("Z-0")

    path.write_text("models: [{name: three, policy: Sideways}]\n")  # a broken edit is not applied
    _until(lambda: "not reloaded" in gateway.output())
    assert "models[0].policy" in gateway.output()
    assert [m.id for m in client.models.list()] == ["one", "two"]

    path.write_text(yaml.safe_dump({"models": [{"name": "two", "endpoints": [{"url": replica.url}]}]}))
    _until(lambda: [m.id for m in client.models.list()] == ["two"])
    with pytest.raises(openai.NotFoundError):
        _chat(client, "one")


def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)
