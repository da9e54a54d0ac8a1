"""Proxy-mode servers in local mode: nothing runs here, the gateway forwards to the provider with
a key read from an env var (locally there are no Secrets)."""

from __future__ import annotations

import re
from collections.abc import Callable

from llmserver_cli.hosting import hosted


def api_key_env(key: str) -> str:
    """The env var local mode reads a proxy's API key from: the Secret *key*, as an env var name.

    `apiKeySecretRef: {name: openai, key: OPENAI_API_KEY}` reads `$OPENAI_API_KEY`;
    `key: api-key` reads `$API_KEY`.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", key).upper()
    return f"_{name}" if name[:1].isdigit() else name


def readiness(env: dict[str, str]) -> Callable[[hosted.Hosted], str]:
    """The engine's `serve_without_runtime` for local mode: Ready when the key it needs is set."""

    def ready(unit: hosted.Hosted) -> str:
        proxy = unit.server.spec.proxy
        ref = proxy.api_key_secret_ref if proxy else None
        if ref is not None:
            env_name = api_key_env(ref.key)
            if not env.get(env_name):
                raise hosted.LoadFailed(
                    f"API key missing: set env {env_name} (local mode reads apiKeySecretRef key {ref.key!r} from it)"
                )
        return f"forwarding to {proxy.url if proxy else '?'}"

    return ready
