"""`llmserver up`: serve LLMServer manifests on this machine, no cluster needed."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import sys

import click
import rich.console

from llmserver_cli.hosting import steps
from llmserver_cli.local import cache_use, demo, display, manifests, server_set, settings, state, supervisor

EPILOG = """\b
Examples:
  llmserver add-server --local mine --model-path ~/.cache/models/x.gguf --backend llama-cpp
  llmserver up                              # serves the local set (add-server/remove-server --local)
  llmserver up --demo                       # a tiny generated model as `tiny`, offline
  llmserver up -f examples/valid/ --port 9000
\b
Local mode reads the same manifests as the operator. Differences:
  source.pvc       claimName is a local folder (absolute or relative to the manifest), path a
                   file or folder inside it; nothing is downloaded.
  source.huggingFace  downloaded into the local cache (LLMSERVER_CACHE_DIR,
                   default ~/.cache/llmserver/models), shared with `llmserver download-model`.
  proxy.apiKeySecretRef  the key is read from the env var named after the Secret *key*
                   (key OPENAI_API_KEY -> $OPENAI_API_KEY; key api-key -> $API_KEY).
  replicas, resources  ignored: one process per self-hosted server.
"""


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def _serve(sup: supervisor.Supervisor, view: display.Display, follower: server_set.Follower | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    sup.on_change = view.update
    sup.background.append(lambda: cache_use.publish(sup))
    if follower is not None:
        follower.report = lambda line: view.console.print(line, markup=False, highlight=False)
        sup.background.append(lambda: follower.run(sup))
    await sup.run(stop)


@click.command("up", epilog=EPILOG)
@click.option("-f", "--file", "files", multiple=True, type=click.Path(path_type=pathlib.Path),
              help="LLMServer manifest (YAML, several documents allowed) or a folder of them; repeatable.")
@click.option("--demo", "with_demo", is_flag=True, help="Also serve a tiny generated GGUF as model `tiny` (llama-cpp, offline).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the gateway listens on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Gateway port.")
@click.option("--idle-unload", default=0.0, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
              help="Stop a model after this many seconds without requests (0: never); its next request restarts it.")
@click.option("--max-loaded", default=0, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="At most N self-hosted models resident; loading another stops the least recently used (0: no cap).")
@click.option("--ready-timeout", default=600.0, show_default=True, type=click.FloatRange(min=1), metavar="SECONDS",
              help="How long one model may take to load before it is marked Failed.")
@click.option("--cache-dir", type=click.Path(path_type=pathlib.Path), help="Model cache [env LLMSERVER_CACHE_DIR].")
@click.option("--state-dir", type=click.Path(path_type=pathlib.Path),
              help="State file, gateway config and logs [env LLMSERVER_STATE_DIR].")
@click.option("--live/--no-live", default=None, help="Live status table (default: when stdout is a terminal).")
def command(
    files: tuple[pathlib.Path, ...],
    with_demo: bool,
    host: str,
    port: int,
    idle_unload: float,
    max_loaded: int,
    ready_timeout: float,
    cache_dir: pathlib.Path | None,
    state_dir: pathlib.Path | None,
    live: bool | None,
) -> None:
    """Serve LLMServer manifests on this machine behind one OpenAI-compatible gateway.

    Without -f it serves the local set (`llmserver add-server --local`, `remove-server --local`)
    and follows it: servers added or removed while it runs start or stop without a restart.
    Every manifest is validated first; nothing starts if one is invalid. Then each self-hosted
    server gets its own runtime process on a free loopback port, proxy-mode servers are forwarded
    to their provider, and the gateway on --port routes by model. Ctrl-C stops everything.
    """
    try:
        _up(files, with_demo, host, port, idle_unload, max_loaded, ready_timeout, cache_dir, state_dir, live)
    except KeyboardInterrupt:  # Ctrl-C before the control loop took over (e.g. while generating --demo)
        click.echo("interrupted", err=True)
        sys.exit(130)


def _up(
    files: tuple[pathlib.Path, ...],
    with_demo: bool,
    host: str,
    port: int,
    idle_unload: float,
    max_loaded: int,
    ready_timeout: float,
    cache_dir: pathlib.Path | None,
    state_dir: pathlib.Path | None,
    live: bool | None,
) -> None:
    console = rich.console.Console(soft_wrap=True)
    err = rich.console.Console(stderr=True, soft_wrap=True)
    overrides = {k: v for k, v in {"cache_dir": cache_dir, "state_dir": state_dir}.items() if v is not None}
    paths = settings.LocalSettings(**overrides)
    follower: server_set.Follower | None = None
    try:
        loaded = manifests.load(files)
        if not files:  # the local set (and --demo, if given)
            follower = server_set.Follower(server_set.folder(paths), report=err.print)
            loaded = server_set.load(follower.where)
            follower.adopt(loaded)
    except manifests.ManifestError as error:
        err.print(f"[bold red]Refused:[/] {len(error.problems)} problem(s) in the manifests; nothing was started.")
        for problem in error.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        sys.exit(2)
    if with_demo and any(m.name == demo.DEMO_NAME or m.server.spec.model == demo.DEMO_NAME for m in loaded):
        err.print(f"[bold red]Refused:[/] --demo serves `{demo.DEMO_NAME}`, which a manifest already uses.")
        sys.exit(2)
    other = state.read(paths.state_file)
    if other is not None:
        err.print(f"[bold red]Refused:[/] `llmserver up` (pid {other.pid}) already runs with {paths.state_dir}; "
                  "stop it or use another --state-dir.")
        sys.exit(1)
    if not _port_free(host, port):
        err.print(f"[bold red]Refused:[/] port {port} on {host} is in use; pick another with --port.")
        sys.exit(1)
    env = steps.child_env(dict(os.environ))
    if with_demo:
        with err.status("generating the tiny demo model (offline)..."):
            try:
                loaded.append(demo.manifest(demo.generate(sys.executable, paths.cache_dir, env)))
            except demo.DemoFailed as error:
                err.print(f"[bold red]--demo failed:[/] {error}", highlight=False)
                sys.exit(1)
    options = supervisor.Options(host=host, port=port, idle_unload=idle_unload, max_loaded=max_loaded,
                                 ready_timeout=ready_timeout)
    sup = supervisor.Supervisor(loaded, paths, options)
    if follower is not None and not loaded:
        console.print(f"the local set ({follower.where}) is empty: add a server with `llmserver add-server "
                      "--local NAME --model-path PATH`; it is served as soon as it is added", highlight=False)
    console.print(f"OpenAI API: [bold]{sup.gateway_url}/v1[/]  (logs in {paths.log_dir}; Ctrl-C stops everything)",
                  highlight=False)
    if with_demo:
        console.print(f"try: curl {sup.gateway_url}/v1/chat/completions -H 'content-type: application/json' "
                      f"-d '{{\"model\": \"tiny\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'",
                      highlight=False, markup=False)
    with display.Display(console, live=console.is_terminal if live is None else live) as view:
        try:
            asyncio.run(_serve(sup, view, follower))
        except supervisor.GatewayFailed as error:
            err.print(f"[bold red]gateway failed:[/] {error}", highlight=False)
            sys.exit(1)
    console.print("stopped")
