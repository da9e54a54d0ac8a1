"""Keeps the Mac agent's ServiceAccount token fresh, as the kubelet does for projected tokens.

`llmserver agent-credentials NODE` hands the Mac a kubeconfig holding a bound ServiceAccount token
(TokenRequest) that expires. Before 80% of its lifetime has passed, the agent asks the API for a new
token for its own ServiceAccount (`serviceaccounts/token`, allowed by name only for itself), puts
it in the client configuration every later request uses, and writes it back into the kubeconfig
file so a restarted agent starts with a valid token. A token that is not a ServiceAccount JWT
(a user's certificate or token, a test cluster) is never refreshed: nothing here expires it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import Any

import yaml

log = logging.getLogger("llmserver.agent.token")
REFRESH_AT = 0.8  # fraction of the lifetime after which a new token is requested
MIN_SECONDS = 600  # the API server refuses shorter TokenRequests
RequestToken = Callable[[str, str, int], str]  # (namespace, account, seconds) -> token


@dataclasses.dataclass(frozen=True)
class Claims:
    """What the agent needs from its own token."""

    namespace: str
    account: str
    issued_at: float
    expires_at: float

    @property
    def lifetime(self) -> int:
        return int(self.expires_at - self.issued_at)

    def refresh_due_at(self) -> float:
        """When the next token should be requested."""
        return self.issued_at + REFRESH_AT * (self.expires_at - self.issued_at)


def claims(token: str | None) -> Claims | None:
    """The ServiceAccount claims of a JWT (read, not verified: the API server verifies it)."""
    if not token or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    kube = data.get("kubernetes.io") or {}
    namespace = kube.get("namespace")
    account = (kube.get("serviceaccount") or {}).get("name")
    if not (namespace and account) and str(data.get("sub", "")).startswith("system:serviceaccount:"):
        namespace, _, account = str(data["sub"]).removeprefix("system:serviceaccount:").partition(":")
    exp, iat = data.get("exp"), data.get("iat") or data.get("nbf")
    if not (namespace and account and isinstance(exp, int | float) and isinstance(iat, int | float)):
        return None
    return Claims(namespace, account, float(iat), float(exp))


def set_token(config: Any, token: str) -> None:
    """Puts `token` where the kubernetes client's configuration reads the bearer token."""
    keys = [key for key in ("authorization", "BearerToken") if key in (config.api_key or {})] or ["authorization"]
    for key in keys:
        config.api_key[key] = f"Bearer {token}"
        config.api_key_prefix.pop(key, None)


def persist(kubeconfig: pathlib.Path, token: str) -> bool:
    """Writes `token` into the current context's user of `kubeconfig` (atomically, mode 0600);
    False when that user holds no token (then the file is left alone)."""
    data = yaml.safe_load(kubeconfig.read_text()) or {}
    context = next((c.get("context") or {} for c in data.get("contexts") or []
                    if c.get("name") == data.get("current-context")), {})
    user = next((u.get("user") for u in data.get("users") or [] if u.get("name") == context.get("user")), None)
    if not isinstance(user, dict) or "token" not in user:
        return False
    user["token"] = token
    handle, temporary = tempfile.mkstemp(dir=kubeconfig.parent, prefix=f".{kubeconfig.name}.")
    with os.fdopen(handle, "w") as out:
        yaml.safe_dump(data, out, sort_keys=False)
    os.chmod(temporary, 0o600)
    os.replace(temporary, kubeconfig)
    return True


class TokenRefresher:
    """Refreshes the token of `config` when due; `check` is cheap and called on every agent pass."""

    def __init__(self, config: Any, token: str | None, request_token: RequestToken, now: Callable[[], float],
                 kubeconfig: pathlib.Path | None = None) -> None:
        self.config = config
        self.request_token = request_token
        self.now = now
        self.kubeconfig = kubeconfig
        self.current = claims(token)
        if self.current is None:
            log.info("the agent's credentials are not a ServiceAccount token: they are not refreshed")

    def due(self) -> bool:
        """Whether a new token should be requested now."""
        return self.current is not None and self.now() >= self.current.refresh_due_at()

    def check(self) -> bool:
        """Requests and installs a new token when due; True when it did. A failed request is
        logged and retried on the next check (the old token is still valid for a fifth of its life)."""
        if not self.due():
            return False
        assert self.current is not None
        seconds = max(self.current.lifetime, MIN_SECONDS)
        try:
            token = self.request_token(self.current.namespace, self.current.account, seconds)
        except Exception as exc:  # noqa: BLE001 - the agent keeps serving on the old token meanwhile
            log.warning("token refresh for %s/%s failed, retrying: %s", self.current.namespace, self.current.account, exc)
            return False
        fresh = claims(token)
        if fresh is None:
            log.warning("the API returned a token without ServiceAccount claims; keeping the old one")
            return False
        set_token(self.config, token)
        self.current = fresh
        if self.kubeconfig is not None and persist(self.kubeconfig, token):
            log.info("token refreshed (valid %ds) and written to %s", fresh.lifetime, self.kubeconfig)
        else:
            log.info("token refreshed (valid %ds)", fresh.lifetime)
        return True


def token_request(api_client: Any) -> RequestToken:
    """A RequestToken over the official client's TokenRequest call."""
    import kubernetes

    core = kubernetes.client.CoreV1Api(api_client)

    def request(namespace: str, account: str, seconds: int) -> str:
        body = kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
        return str(core.create_namespaced_service_account_token(account, namespace, body).status.token)

    return request
