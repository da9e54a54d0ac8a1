"""API keys: 401 without a valid key, 403 for a model the key may not use, 429 with Retry-After."""

from __future__ import annotations

import pytest

from llmserver_gateway import auth
from llmserver_api.protocol import errors


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _store(clock: Clock | None = None) -> auth.KeyStore:
    store = auth.KeyStore(clock=clock or Clock())
    store.replace([
        auth.ApiKey("sk-all"),
        auth.ApiKey("sk-tiny", models=frozenset({"tiny"}), requests_per_minute=3),
    ])
    return store


def test_no_keys_means_no_auth() -> None:
    store = auth.KeyStore()
    assert not store.enabled
    assert store.authenticate(None) is None


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic c2stYWxs", "Bearer sk-wrong"])
def test_missing_or_wrong_key_is_401_without_echoing_it(header: str | None) -> None:
    with pytest.raises(errors.APIError) as caught:
        _store().authenticate(header)
    assert caught.value.status_code == 401
    assert caught.value.detail.code == "invalid_api_key"
    assert "sk-wrong" not in caught.value.body().decode()


def test_key_limited_to_models_gets_403_elsewhere() -> None:
    store = _store()
    key = store.authenticate("Bearer sk-tiny")
    store.admit(key, "tiny")
    with pytest.raises(errors.APIError) as caught:
        store.admit(key, "big")
    assert caught.value.status_code == 403
    store.admit(store.authenticate("bearer sk-all"), "big")


def test_rate_limit_429_with_retry_after_then_refills() -> None:
    clock = Clock()
    store = _store(clock)
    key = store.authenticate("Bearer sk-tiny")
    for _ in range(3):
        store.admit(key, "tiny")
    with pytest.raises(errors.APIError) as caught:
        store.admit(key, "tiny")
    assert caught.value.status_code == 429
    assert caught.value.headers["Retry-After"] == "20"  # 3/min: one request every 20 s
    clock.now += 20
    store.admit(key, "tiny")
    with pytest.raises(errors.APIError):
        store.admit(key, "tiny")


def test_reload_keeps_the_bucket_of_a_key_that_stays() -> None:
    clock = Clock()
    store = _store(clock)
    key = store.authenticate("Bearer sk-tiny")
    for _ in range(3):
        store.admit(key, "tiny")
    store.replace([auth.ApiKey("sk-tiny", models=frozenset({"tiny"}), requests_per_minute=3)])
    with pytest.raises(errors.APIError):
        store.admit(store.authenticate("Bearer sk-tiny"), "tiny")
    with pytest.raises(errors.APIError):
        store.authenticate("Bearer sk-all")  # removed by the reload


def test_required_but_unloaded_keys_refuse_everyone() -> None:
    store = auth.KeyStore()
    store.required = True
    with pytest.raises(errors.APIError) as caught:
        store.authenticate("Bearer anything")
    assert caught.value.status_code == 401
