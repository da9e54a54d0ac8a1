"""The hosting engine's pure pieces: the argv of every child, activity from a runtime's metrics,
download progress lines."""

from __future__ import annotations

import pathlib

import llmserver_api
from llmserver_cli.hosting import activity, argv, steps


def server(spec: dict[str, object]) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate(
        {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": "s"}, "spec": spec}
    )


def test_serve_command_carries_backend_settings_and_extra_args() -> None:
    s = server({
        "model": "tiny", "backend": "llama-cpp", "source": {"pvc": {"claimName": "/m", "path": "t.gguf"}},
        "llamaCpp": {"nCtx": 512, "nThreads": 2}, "capabilities": ["TextGeneration"], "extraArgs": ["--foo", "1"],
    })  # fmt: skip
    command = argv.serve("/py", s, pathlib.Path("/m/t.gguf"), "127.0.0.1", 18081)
    assert command[:4] == ["/py", "-m", "llmserver_runtime", "serve"]
    joined = " ".join(command)
    assert "--backend llama-cpp --model /m/t.gguf --served-model-name tiny --host 127.0.0.1 --port 18081" in joined
    assert "--n-ctx 512" in joined and "--n-threads 2" in joined and "--capabilities TextGeneration" in joined
    assert command[-3:] == ["--", "--foo", "1"]


def test_transformers_flags() -> None:
    s = server({"model": "t", "backend": "transformers", "source": {"huggingFace": {"repo": "a/b"}},
                "transformers": {"loadIn8bit": True, "dtype": "float32"}, "trustRemoteCode": True})  # fmt: skip
    command = argv.serve("/py", s, pathlib.Path("/c"), "127.0.0.1", 1)
    assert "--load-in-8bit" in command and "--load-in-4bit" not in command and "--trust-remote-code" in command
    assert command[command.index("--dtype") + 1] == "float32"


def test_download_and_gateway_commands() -> None:
    s = server({"model": "q", "source": {"huggingFace": {"repo": "Qwen/Q", "file": "q.gguf", "revision": "v1"}}})
    assert argv.download("/py", s, pathlib.Path("/cache")) == [
        "/py", "-m", "llmserver_runtime", "download", "--repo", "Qwen/Q", "--file", "q.gguf", "--revision", "v1",
        "--cache-dir", "/cache",
    ]  # fmt: skip
    assert argv.gateway("/py", pathlib.Path("/g.yaml"), "127.0.0.1", 8000) == [
        "/py", "-m", "llmserver_gateway", "--config", "/g.yaml", "--host", "127.0.0.1", "--port", "8000"
    ]


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


def test_download_progress_lines_are_parsed() -> None:
    assert steps.parse_progress("progress: 1.5 MiB / 3.0 MiB (50%), 0/1 files [bytes=1572864/3145728] q.gguf") == (1572864, 3145728)
    assert steps.parse_progress("progress: 10 B, 0/? files [bytes=10/?]") == (10, None)
    assert steps.parse_progress("downloading org/x@main (commit abc): 1 file into /c") is None
