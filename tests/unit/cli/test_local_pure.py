"""Local mode's pure pieces: gateway config, state file, how progress is shown."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import yaml

import pytest

import llmserver_api
from llmserver_cli.hosting import hosted
from llmserver_cli.local import gateway_config, proxy, state


def server(spec: dict[str, object]) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate(
        {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": "s"}, "spec": spec}
    )


def test_gateway_config_follows_the_contract_and_is_written_only_on_change(tmp_path: pathlib.Path) -> None:
    routes = [
        gateway_config.Route("zeta", endpoints=(gateway_config.Endpoint("http://127.0.0.1:1", True),)),
        gateway_config.Route("gpt", upstream=gateway_config.Upstream("https://p.example/v1", "gpt-4o", "KEY")),
        gateway_config.Route("down", policy="PrefixHash"),
    ]
    config = gateway_config.build(routes)
    assert config == {"models": [
        {"name": "down", "policy": "PrefixHash", "endpoints": []},
        {"name": "gpt", "upstream": {"url": "https://p.example/v1", "model": "gpt-4o", "apiKeyEnv": "KEY"}},
        {"name": "zeta", "policy": "LeastOutstanding", "endpoints": [{"url": "http://127.0.0.1:1", "ready": True}]},
    ]}  # fmt: skip
    path = tmp_path / "gw.yaml"
    assert gateway_config.write(path, config) is True
    assert yaml.safe_load(path.read_text()) == config
    assert gateway_config.write(path, config) is False


def test_gateway_accepts_the_config_local_mode_writes() -> None:
    """The gateway's own parser (not imported by the operator; the test may) takes our file."""
    from llmserver_gateway import config as gateway_parser

    config = gateway_config.build([
        gateway_config.Route("tiny", endpoints=(gateway_config.Endpoint("http://127.0.0.1:5/wake/tiny", True),)),
        gateway_config.Route("gpt", upstream=gateway_config.Upstream("http://127.0.0.1:9/v1", "gpt", "PROVIDER_KEY")),
        gateway_config.Route("off"),
    ])  # fmt: skip
    routes, keys = gateway_parser.parse(yaml.safe_dump(config), {"PROVIDER_KEY": "sk-test"})
    assert sorted(route.model for route in routes) == ["gpt", "off", "tiny"] and keys is None


def test_state_file_round_trip_and_stale_pid(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    current = state.LocalState(pid=os.getpid(), gateway_url="http://127.0.0.1:8000", token="t0ken",
                               servers=[state.ServerState(name="a", model="a", mode="SelfHosted", backend="auto")])  # fmt: skip
    state.write(path, current)
    assert path.stat().st_mode & 0o777 == 0o600
    read = state.read(path)
    assert read is not None and read.server("a") is not None and read.token == "t0ken"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    state.write(path, current.model_copy(update={"pid": int(dead.stdout)}))
    assert state.read(path) is None
    state.remove(path, int(dead.stdout))
    assert not path.exists()


def test_download_progress_is_shown() -> None:
    from llmserver_cli.local import display

    server = state.ServerState(name="q", model="q", mode="SelfHosted", backend="llama-cpp", phase="Downloading",
                               message="org/q", download_bytes=1572864, download_total=3145728)  # fmt: skip
    assert display.detail(server) == "org/q: 1.5 MiB / 3.0 MiB (50%)"


def _hosted(spec: dict[str, object]) -> hosted.Hosted:
    return hosted.Hosted(key="s", server=server(spec), origin=pathlib.Path("/m/s.yaml"), changed=lambda: None)


def test_state_row_of_a_hosted_server() -> None:
    unit = _hosted({"model": "gpt", "mode": "Proxy", "proxy": {"url": "https://p.example/v1"}})
    unit.phase, unit.message = "Ready", "forwarding"
    row = state.server_state(unit)
    assert (row.name, row.model, row.mode, row.backend, row.upstream, row.phase) == (
        "s", "gpt", "Proxy", "-", "https://p.example/v1", "Ready"
    )
    unit = _hosted({"model": "tiny", "backend": "llama-cpp", "source": {"pvc": {"claimName": "/m", "path": "t.gguf"}}})
    unit.port, unit.download_bytes = 18081, 10
    row = state.server_state(unit)
    assert (row.backend, row.port, row.pid, row.download_bytes) == ("llama-cpp", 18081, None, 10)


def test_a_proxy_is_ready_only_with_its_key_in_the_environment() -> None:
    ref = {"name": "p", "key": "provider-key"}
    unit = _hosted({"model": "gpt", "mode": "Proxy", "proxy": {"url": "https://p.example/v1", "apiKeySecretRef": ref}})
    with pytest.raises(hosted.LoadFailed, match="PROVIDER_KEY"):
        proxy.readiness({})(unit)
    assert proxy.readiness({"PROVIDER_KEY": "sk"})(unit) == "forwarding to https://p.example/v1"
