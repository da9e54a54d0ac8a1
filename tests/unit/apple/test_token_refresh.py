"""The Mac agent refreshes its ServiceAccount token before it expires (fake clock, fake TokenRequest),
installs it in the client configuration and writes it back into its kubeconfig."""

from __future__ import annotations

import base64
import json
import pathlib
import stat

import kubernetes.client
import yaml
from llmserver_cli.apple import credentials, token_refresh

T0 = 1_800_000_000.0


def _jwt(issued: float, lifetime: int, account: str = "applenode-m1", namespace: str = "llmserver-system") -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"iat": int(issued), "nbf": int(issued), "exp": int(issued + lifetime),
              "sub": f"system:serviceaccount:{namespace}:{account}",
              "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": account, "uid": "u"}}}
    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """A TokenRequest stand-in: a fresh token issued at the clock's time; can be made to fail."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, str, int]] = []
        self.failing = False

    def __call__(self, namespace: str, account: str, seconds: int) -> str:
        self.calls.append((namespace, account, seconds))
        if self.failing:
            raise ConnectionError("API unreachable")
        return _jwt(self.clock.now, seconds, account, namespace)


def _config(token: str) -> kubernetes.client.Configuration:
    config = kubernetes.client.Configuration()
    config.api_key = {"authorization": f"Bearer {token}"}
    return config


def _kubeconfig(tmp_path: pathlib.Path, token: str) -> pathlib.Path:
    path = tmp_path / "mac.kubeconfig"
    credentials.write_private(path, credentials.build_kubeconfig("https://api:6443", b"CA", False, "m1",
                                                                 "llmserver-system", token))
    return path


def test_claims_of_a_serviceaccount_token() -> None:
    claims = token_refresh.claims(_jwt(T0, 3600))
    assert claims == token_refresh.Claims("llmserver-system", "applenode-m1", T0, T0 + 3600)
    assert claims.refresh_due_at() == T0 + 2880
    for other in (None, "", "emulator", "a.b.c", "x." + base64.urlsafe_b64encode(b'{"exp": 1}').decode() + ".y"):
        assert token_refresh.claims(other) is None


def test_token_is_refreshed_at_80_percent_of_its_life_and_persisted(tmp_path: pathlib.Path) -> None:
    clock = Clock()
    issuer = Issuer(clock)
    first = _jwt(T0, 3600)
    config, path = _config(first), _kubeconfig(tmp_path, first)
    refresher = token_refresh.TokenRefresher(config, first, issuer, clock, kubeconfig=path)
    clock.now = T0 + 2879
    assert not refresher.check() and issuer.calls == []
    clock.now = T0 + 2880
    assert refresher.check()
    assert issuer.calls == [("llmserver-system", "applenode-m1", 3600)]  # its own account, the same lifetime
    fresh = config.api_key["authorization"].removeprefix("Bearer ")
    assert fresh != first and token_refresh.claims(fresh).issued_at == T0 + 2880
    assert kubernetes.client.ApiClient(config).configuration.get_api_key_with_prefix("authorization") == f"Bearer {fresh}"
    saved = yaml.safe_load(path.read_text())
    assert saved["users"][0]["user"]["token"] == fresh
    assert saved["clusters"][0]["cluster"]["server"] == "https://api:6443"  # the rest is kept
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    clock.now = T0 + 2880 + 2879
    assert not refresher.check()  # the next one is due 80% into the new token's life
    clock.now = T0 + 2880 + 2880
    assert refresher.check() and len(issuer.calls) == 2


def test_a_failed_refresh_keeps_the_old_token_and_retries(tmp_path: pathlib.Path) -> None:
    clock = Clock()
    issuer = Issuer(clock)
    first = _jwt(T0, 3600)
    config = _config(first)
    refresher = token_refresh.TokenRefresher(config, first, issuer, clock)
    clock.now = T0 + 3000
    issuer.failing = True
    assert not refresher.check()
    assert config.api_key["authorization"] == f"Bearer {first}"
    issuer.failing = False
    clock.now = T0 + 3001
    assert refresher.check() and len(issuer.calls) == 2


def test_short_tokens_ask_for_the_api_minimum() -> None:
    clock = Clock()
    issuer = Issuer(clock)
    short = _jwt(T0, 120)
    refresher = token_refresh.TokenRefresher(_config(short), short, issuer, clock)
    clock.now = T0 + 100
    assert refresher.check() and issuer.calls[0][2] == token_refresh.MIN_SECONDS


def test_credentials_that_are_not_a_serviceaccount_token_are_left_alone(tmp_path: pathlib.Path) -> None:
    clock = Clock()
    issuer = Issuer(clock)
    config = _config("emulator")
    refresher = token_refresh.TokenRefresher(config, "emulator", issuer, clock)
    clock.now = T0 + 10**9
    assert not refresher.due() and not refresher.check() and issuer.calls == []
    plain = tmp_path / "cert.kubeconfig"
    plain.write_text(yaml.safe_dump({"current-context": "c", "contexts": [{"name": "c", "context": {"user": "u"}}],
                                     "users": [{"name": "u", "user": {"client-certificate-data": "x"}}]}))
    before = plain.read_text()
    assert not token_refresh.persist(plain, "t") and plain.read_text() == before
