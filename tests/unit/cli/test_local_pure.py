"""Local mode's pure pieces: command lines, gateway config, activity from metrics, state file."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import yaml

import llmserver_api
from llmserver_cli.local import activity, commands, gateway_config, state


def server(spec: dict[str, object]) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate(
        {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": "s"}, "spec": spec}
    )


def test_serve_command_carries_backend_settings_and_extra_args() -> None:
    s = server({
        "model": "tiny", "backend": "llama-cpp", "source": {"pvc": {"claimName": "/m", "path": "t.gguf"}},
        "llamaCpp": {"nCtx": 512, "nThreads": 2}, "capabilities": ["TextGeneration"], "extraArgs": ["--foo", "1"],
    })  # fmt: skip
    argv = commands.serve("/py", s, pathlib.Path("/m/t.gguf"), "127.0.0.1", 18081)
    assert argv[:4] == ["/py", "-m", "llmserver_runtime", "serve"]
    joined = " ".join(argv)
    assert "--backend llama-cpp --model /m/t.gguf --served-model-name tiny --host 127.0.0.1 --port 18081" in joined
    assert "--n-ctx 512" in joined and "--n-threads 2" in joined and "--capabilities TextGeneration" in joined
    assert argv[-3:] == ["--", "--foo", "1"]


def test_transformers_flags() -> None:
    s = server({"model": "t", "backend": "transformers", "source": {"huggingFace": {"repo": "a/b"}},
                "transformers": {"loadIn8bit": True, "dtype": "float32"}, "trustRemoteCode": True})  # fmt: skip
    argv = commands.serve("/py", s, pathlib.Path("/c"), "127.0.0.1", 1)
    assert "--load-in-8bit" in argv and "--load-in-4bit" not in argv and "--trust-remote-code" in argv
    assert argv[argv.index("--dtype") + 1] == "float32"


def test_download_and_gateway_commands() -> None:
    s = server({"model": "q", "source": {"huggingFace": {"repo": "Qwen/Q", "file": "q.gguf", "revision": "v1"}}})
    assert commands.download("/py", s, pathlib.Path("/cache")) == [
        "/py", "-m", "llmserver_runtime", "download", "--repo", "Qwen/Q", "--revision", "v1", "--file", "q.gguf",
        "--cache-dir", "/cache",
    ]  # fmt: skip
    assert commands.gateway("/py", pathlib.Path("/g.yaml"), "127.0.0.1", 8000) == [
        "/py", "-m", "llmserver_gateway", "--config", "/g.yaml", "--host", "127.0.0.1", "--port", "8000"
    ]


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


def test_activity_reads_the_runtime_metrics() -> None:
    from llmserver_runtime.server import metrics as runtime_metrics
    import prometheus_client

    m = runtime_metrics.RuntimeMetrics("tiny", "llama-cpp")
    idle = activity.signature(prometheus_client.generate_latest(m.registry).decode())
    m.requests.labels(model="tiny", endpoint="chat", status="200").inc()
    used = activity.signature(prometheus_client.generate_latest(m.registry).decode())
    assert used[0] == idle[0] + 1
    assert activity.used_since(idle, used) and not activity.used_since(used, used)
    m.in_flight.labels(model="tiny").set(2)
    busy = activity.signature(prometheus_client.generate_latest(m.registry).decode())
    assert busy[1] == 2 and activity.used_since(busy, busy)


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


def test_download_progress_lines_are_parsed_and_shown() -> None:
    from llmserver_cli.local import display, units

    assert units.parse_progress("progress: 1.5 MiB / 3.0 MiB (50%), 0/1 files [bytes=1572864/3145728] q.gguf") == (1572864, 3145728)
    assert units.parse_progress("progress: 10 B, 0/? files [bytes=10/?]") == (10, None)
    assert units.parse_progress("downloading org/x@main (commit abc): 1 file into /c") is None
    server = state.ServerState(name="q", model="q", mode="SelfHosted", backend="llama-cpp", phase="Downloading",
                               message="org/q", download_bytes=1572864, download_total=3145728)  # fmt: skip
    assert display.detail(server) == "org/q: 1.5 MiB / 3.0 MiB (50%)"
