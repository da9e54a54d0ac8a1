"""The Mac agent's children start with a clean environment: a runtime gets what serving needs and
its node key, a download also the Hugging Face token; neither gets the agent's kubeconfig, cloud
credentials or (the runtime) the Hub token. Checked on the environment the real child processes
receive (a stand-in interpreter dumps it), not only on the settings object."""

from __future__ import annotations

import asyncio
import pathlib

import aiohttp
import llmserver_api
import pytest
from llmserver_cli.apple import agent, agent_settings
from llmserver_cli.hosting import hosted, steps

DIRTY = {
    "PATH": "/usr/bin:/bin", "HOME": "/Users/mac", "LANG": "en_US.UTF-8", "LC_ALL": "en_US.UTF-8",
    "HF_HOME": "/Users/mac/.cache/huggingface", "HF_HUB_OFFLINE": "1", "LLMSERVER_RUNTIME_MAX_BODY_BYTES": "1000",
    "HF_TOKEN": "hf_secret", "HUGGING_FACE_HUB_TOKEN": "hf_secret2", "HTTPS_PROXY": "http://proxy:3128",
    "KUBECONFIG": "/Users/mac/applenode-m1.kubeconfig", "AWS_SECRET_ACCESS_KEY": "aws", "AWS_ACCESS_KEY_ID": "id",
    "GOOGLE_APPLICATION_CREDENTIALS": "/x.json", "OPENAI_API_KEY": "sk-openai", "GITHUB_TOKEN": "ghp",
    "LLMSERVER_AGENT_ADDRESS": "10.0.0.5", "SSH_AUTH_SOCK": "/tmp/agent.sock", "LLMSERVER_API_KEY": "stale",
}
NEVER = {"KUBECONFIG", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS",
         "OPENAI_API_KEY", "GITHUB_TOKEN", "LLMSERVER_AGENT_ADDRESS", "SSH_AUTH_SOCK"}
SERVING = {"PATH", "HOME", "LANG", "LC_ALL", "HF_HOME", "HF_HUB_OFFLINE", "LLMSERVER_RUNTIME_MAX_BODY_BYTES"}


def _dumping_python(tmp_path: pathlib.Path) -> str:
    """An 'interpreter' that writes the environment it got to <tmp>/<subcommand>.env and fails."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\n/usr/bin/env > "{tmp_path}/$3.env"\necho "$@" > "{tmp_path}/$3.args"\nexit 3\n')
    script.chmod(0o755)
    return str(script)


def _env_file(path: pathlib.Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _unit(tmp_path: pathlib.Path, source: dict) -> hosted.Hosted:
    server = llmserver_api.LLMServer.model_validate({"metadata": {"name": "m", "namespace": "ml"},
                                                     "spec": {"model": "m", "backend": "mlx", "source": source}})
    return hosted.Hosted("ml/m", server, tmp_path / "manifest", lambda: None)


@pytest.fixture
def config(tmp_path: pathlib.Path):
    settings = agent_settings.AgentSettings(address="10.0.0.5", node_name="m1", python=_dumping_python(tmp_path),
                                            cache_dir=tmp_path / "cache", log_dir=tmp_path / "logs")
    return agent.engine_settings(settings, "node-key", environ=dict(DIRTY))


def test_a_runtime_gets_only_what_serving_needs(tmp_path: pathlib.Path, config) -> None:
    (tmp_path / "weights").mkdir()
    unit = _unit(tmp_path, {"pvc": {"claimName": str(tmp_path), "path": "weights"}})

    async def start() -> None:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(hosted.LoadFailed):
                await steps.start(unit, config, http, lambda: steps.free_port())

    asyncio.run(start())
    env = _env_file(tmp_path / "serve.env")
    assert env["LLMSERVER_API_KEY"] == "node-key"  # the node's key, not one inherited
    assert SERVING <= set(env)
    assert not (NEVER | {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HTTPS_PROXY"}) & set(env), sorted(env)


def test_a_download_gets_the_hub_token_but_no_cluster_or_cloud_credentials(tmp_path: pathlib.Path, config) -> None:
    unit = _unit(tmp_path, {"huggingFace": {"repo": "acme/tiny"}})
    with pytest.raises(hosted.LoadFailed):
        asyncio.run(steps.download(unit, config))
    env = _env_file(tmp_path / "download.env")
    assert env["HF_TOKEN"] == "hf_secret" and env["HTTPS_PROXY"] == "http://proxy:3128"
    assert SERVING <= set(env)
    assert not (NEVER | {"LLMSERVER_API_KEY"}) & set(env), sorted(env)
    assert "--report-to" not in (tmp_path / "download.args").read_text()  # the agent relays progress itself
