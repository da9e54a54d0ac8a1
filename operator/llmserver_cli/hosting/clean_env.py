"""Environments built from an allow-list, for children that must not inherit their parent's.

The Mac agent runs with a kubeconfig, and often with a user's cloud credentials and Hugging Face
token in its environment; a runtime needs none of them, and a runtime serves requests from the
network. So a runtime gets only what serving needs (paths, locale, the model cache's location, its
own settings and its API key), and a download additionally gets what fetching needs (the Hugging
Face token and endpoint, the network proxy); neither gets the kubeconfig or cloud credentials.
"""

from __future__ import annotations

from collections.abc import Mapping

# What any Python child needs to start and find its files.
BASE = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE", "PYTHONPATH", "VIRTUAL_ENV",
        "XDG_CACHE_HOME")
# Where models are cached, and offline switches (no secret in any of them).
CACHE = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_HUB_OFFLINE",
         "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
# Prefixes of variables a runtime reads: locale categories, its own settings, MLX's knobs.
PREFIXES = ("LC_", "LLMSERVER_RUNTIME_", "MLX_")
# What a download adds: the Hub's credentials and endpoint, and the way out to it.
DOWNLOAD = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
            "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")


def _kept(base: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {key: value for key, value in base.items() if key in names or key.startswith(PREFIXES)}


def runtime_env(base: Mapping[str, str], api_key: str) -> dict[str, str]:
    """The environment of a runtime: the allow-listed part of `base` and its API key."""
    env = _kept(base, BASE + CACHE)
    env["LLMSERVER_API_KEY"] = api_key
    env["PYTHONUNBUFFERED"] = "1"
    return dict(sorted(env.items()))


def download_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a download: what a runtime gets (no API key) plus the Hub's token,
    endpoint and proxy settings."""
    env = _kept(base, BASE + CACHE + DOWNLOAD)
    env["PYTHONUNBUFFERED"] = "1"
    return dict(sorted(env.items()))
