"""`llmserver-runtime serve`: load one model with one backend and serve the OpenAI API.

Flags win over env `LLMSERVER_*` (pydantic-settings); the words after `--` go to the engine
unchanged. Exit codes: 0 after a clean shutdown, 1 when the model failed to load, 2 for bad
arguments (unknown backend, invalid setting)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
import prometheus_client
import pydantic
import uvicorn
from llmserver_api import engine_flags
from llmserver_backends import base, registry

from llmserver_runtime.server import app as app_module
from llmserver_runtime.server import auto
from llmserver_runtime.server import settings

log = logging.getLogger("llmserver.runtime")


# Settings whose flag is named otherwise (a repeatable flag is singular).
_FLAG_NAMES = {"adapters": "adapter"}


def _settings(flags: dict[str, Any]) -> settings.ServeSettings:
    given = {key: value for key, value in flags.items() if value is not None and value != ()}
    for listed in ("extra_args", "adapters"):
        if listed in given:
            given[listed] = list(given[listed])
    try:
        return settings.ServeSettings(**given)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(_FLAG_NAMES.get(str(p), str(p)) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            if e["loc"]
            else e["msg"]
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


def _leave(code: int) -> NoReturn:
    """Exits with `code` without the interpreter's teardown, once logs are flushed and child
    processes stopped.

    Engines keep native threads that can abort the process while C++ statics are destroyed (MLX
    on CPU: "terminate called without an active exception", about one exit in six), which turns
    exit 1 for a model that failed to load, or 0 after a clean shutdown, into SIGABRT: a crash to
    kubelet, `llmserver up` and the tests. The server has already shut its backend down here;
    what is left to do by hand is what atexit would have done that matters: stop engine
    subprocesses (vLLM's engine core) and flush the logs.
    """
    for child in multiprocessing.active_children():
        child.terminate()
        child.join(5)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


_INT = click.INT
_FLOAT = click.FLOAT
_CLICK_TYPES: dict[type, click.ParamType] = {int: click.INT, float: click.FLOAT, str: click.STRING}
_Command = TypeVar("_Command", bound=Callable[..., Any])


def engine_flag_options(command: _Command) -> _Command:
    """One click option per engine flag of `llmserver_api.engine_flags`, their one declaration.

    Like llama-cpp-python's server CLI, the options come from the settings model: a flag added
    there is a `serve` option, an env name and an engine option without another edit. Unset
    options stay None so that env and the settings' defaults apply.
    """
    for flag in reversed(engine_flags.flags()):
        if flag.is_switch:
            option = click.option(flag.option, is_flag=True, default=None, help=flag.help)
        else:
            option = click.option(
                flag.option, type=_CLICK_TYPES[flag.value_type], metavar=flag.metavar, help=flag.help
            )
        command = option(command)
    return command


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
@engine_flag_options
@click.option("--allow-remote-images", is_flag=True, default=None, help="Fetch http(s) image URLs (off: SSRF).")
@click.option(
    "--adapter", "adapters", multiple=True, metavar="NAME=PATH",
    help="LoRA adapter served as <served-model-name>:NAME (repeatable; env LLMSERVER_ADAPTERS=NAME=PATH,...).",
)  # fmt: skip
@click.option("--adapter-root", help="Directory tree live adapter loads may read (env LLMSERVER_ADAPTER_ROOT).")
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
    missing = {name: path for name, path in config.adapter_paths().items() if not os.path.exists(path)}
    if kind != "fake" and missing:  # the fake reads no files, its adapters' neither
        for name, path in missing.items():
            log.critical("adapter %s: path %s does not exist", name, path)
        sys.exit(1)
    _leave(run(config, backend))
