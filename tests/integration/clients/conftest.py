"""A real runtime (llama.cpp on the tiny GGUF) behind a real gateway, for third-party clients."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest
import yaml
from testkit import fake_upstreams, runtime_server
from testkit.models import tiny_gguf  # noqa: F401 - session fixture

# litellm fetches its model cost map from the network at import unless told to use its bundled copy.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

MODEL = "tiny"


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_gguf: str,  # noqa: F811
) -> Iterator[runtime_server.RuntimeServer]:
    flags = ("--n-ctx", "1024", "--n-threads", "2")
    with runtime_server.start(tmp_path_factory.mktemp("runtime"), "llama-cpp", tiny_gguf, MODEL, *flags) as server:
        yield server


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory, runtime: runtime_server.RuntimeServer) -> Iterator[str]:
    """The gateway's OpenAI base URL (…/v1) routing MODEL to the runtime."""
    tmp: pathlib.Path = tmp_path_factory.mktemp("gateway")
    config = tmp / "gateway.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": MODEL, "endpoints": [{"url": runtime.url}]}]}))
    proc = fake_upstreams.start_gateway(tmp, "--config", str(config))
    try:
        yield proc.url + "/v1"
    finally:
        proc.stop()
