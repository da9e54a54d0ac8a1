"""`llmserver-runtime serve`: load one model with one backend and serve the OpenAI API.

Flags win over env `LLMSERVER_*` (pydantic-settings); the words after `--` go to the engine
unchanged. Exit codes: 0 after a clean shutdown, 1 when the model failed to load, 2 for bad
arguments (unknown backend, invalid setting)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
import prometheus_client
import pydantic
import uvicorn
from llmserver_backends import base, registry

from llmserver_runtime.server import app as app_module
from llmserver_runtime.server import auto
from llmserver_runtime.server import settings

log = logging.getLogger("llmserver.runtime")


def _settings(flags: dict[str, Any]) -> settings.ServeSettings:
    given = {key: value for key, value in flags.items() if value is not None and value != ()}
    if "extra_args" in given:
        given["extra_args"] = list(given["extra_args"])
    try:
        return settings.ServeSettings(**given)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise click.UsageError(problems) from None


def run(config: settings.ServeSettings, backend: base.ModelBackend) -> int:
    """Serve until shutdown; the exit code says whether the model loaded."""
    failures: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_load_failure(exc: BaseException) -> None:
        failures.append(exc)
        if server is not None:
            server.should_exit = True

    application = app_module.create_app(config, backend, on_load_failure=on_load_failure)
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host=config.host,
            port=config.port,
            log_level=config.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    )
    server.run()
    if failures:
        log.critical("exiting: model %s could not be loaded", config.served_model_name)
        return 1
    return 0


_INT = click.INT
_FLOAT = click.FLOAT


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--backend", help="llama-cpp, transformers, vllm, mlx, mlx-vlm, auto or fake.")
@click.option("--model", help="Local model path (a .gguf file or a model directory).")
@click.option("--served-model-name", help="Name clients send as `model`.")
@click.option("--host", help="Listen address [0.0.0.0].")
@click.option("--port", type=_INT, help="Listen port [8080].")
@click.option("--capabilities", help="Comma list: TextGeneration,Embeddings,Vision,Rerank (default: detect).")
@click.option("--trust-remote-code", is_flag=True, default=None, help="Allow the model repo's own code.")
@click.option("--max-concurrency", type=_INT, help="Requests running at once (default: backend's limit).")
@click.option("--max-queue", type=_INT, help="Requests waiting beyond that before 429 [64].")
@click.option("--request-timeout", type=_FLOAT, help="Seconds per request, queueing included [600].")
@click.option("--n-gpu-layers", type=_INT, help="llama-cpp: layers on the GPU (-1: all).")
@click.option("--n-ctx", type=_INT, help="llama-cpp: context size.")
@click.option("--n-batch", type=_INT, help="llama-cpp: prompt batch size.")
@click.option("--n-threads", type=_INT, help="llama-cpp: CPU threads.")
@click.option("--tensor-parallel-size", type=_INT, help="vllm: GPUs per replica.")
@click.option("--gpu-memory-utilization", type=_FLOAT, help="vllm: GPU memory fraction.")
@click.option("--max-model-len", type=_INT, help="vllm: context length.")
@click.option("--dtype", help="vllm/transformers: weight dtype.")
@click.option("--load-in-4bit", is_flag=True, default=None, help="transformers: bitsandbytes 4-bit.")
@click.option("--load-in-8bit", is_flag=True, default=None, help="transformers: bitsandbytes 8-bit.")
@click.option("--max-kv-size", type=_INT, help="mlx/mlx-vlm: KV cache size.")
@click.option("--max-tokens", type=_INT, help="mlx-vlm: default max tokens.")
@click.option("--allow-remote-images", is_flag=True, default=None, help="Fetch http(s) image URLs (off: SSRF).")
@click.option("--log-level", help="debug, info, warning, error [info].")
@click.argument("extra_args", nargs=-1, type=click.UNPROCESSED)
def command(**flags: Any) -> None:
    """Serve one model over the OpenAI API (see docs/contracts.md)."""
    config = _settings(flags)
    prometheus_client.disable_created_metrics()  # process-wide, so set here in the entrypoint
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:  # `auto`: decided from the model's files and this machine (server/auto.py)
        choice = auto.choose(config)
    except auto.Undecided as exc:
        log.critical("--backend auto cannot serve %s: %s", config.model, exc)
        sys.exit(1)
    config, kind = choice.config, choice.backend
    if choice.reason:
        log.info("--backend auto chose %s: %s", kind, choice.reason)
    try:
        backend = registry.create(kind, config.backend_config())
    except (registry.UnknownBackend, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if kind != "fake" and not os.path.exists(config.model):
        log.critical("model path %s does not exist", config.model)
        sys.exit(1)
    sys.exit(run(config, backend))
