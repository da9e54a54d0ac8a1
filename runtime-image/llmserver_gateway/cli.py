"""`llmserver-gateway` (or `llmserver-runtime gateway`) `(--config FILE | --kubernetes [--namespace NS]) [--host] [--port 8000]`.

Settings are read here and only here (flags win over `LLMSERVER_GATEWAY_*` env vars); everything
below takes them as arguments. Kubernetes libraries are imported only in --kubernetes mode.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib

import click
from aiohttp import web

from llmserver_gateway import app, auth, config, settings, table

log = logging.getLogger("llmserver.gateway")


@click.command("gateway")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              help="Static config YAML (local mode, tests); reloaded when it changes.")
@click.option("--kubernetes", is_flag=True, help="Discover LLMServers, EndpointSlices and Secrets from the cluster.")
@click.option("--namespace", default=None, help="Kubernetes mode: watch only this namespace (default: all).")
@click.option("--api-keys-secret", default=None,
              help="Kubernetes mode: Secret whose `apiKeys` key holds the gateway API keys (YAML).")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity.")
def command(
    config_file: pathlib.Path | None,
    kubernetes: bool,
    namespace: str | None,
    api_keys_secret: str | None,
    host: str,
    port: int,
    log_level: str,
) -> None:
    """Serve one OpenAI-compatible endpoint that routes by `model` to every served model."""
    if (config_file is None) == (not kubernetes):
        raise click.UsageError("give exactly one of --config FILE and --kubernetes")
    if config_file is not None and (namespace or api_keys_secret):
        raise click.UsageError("--namespace and --api-keys-secret only apply with --kubernetes")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Client libraries log request/response details at debug level; keep them quiet so a Secret or
    # an Authorization header can never reach the log, whatever --log-level says.
    for noisy in ("kubernetes", "aiohttp.client", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    overrides = {k: v for k, v in {"namespace": namespace, "api_keys_secret": api_keys_secret}.items() if v}
    try:
        gateway_settings = settings.GatewaySettings(**overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    routes = table.RoutingTable()
    keys = auth.KeyStore()
    if config_file is not None:
        source = config.StaticSource(config_file, routes, keys, poll_seconds=gateway_settings.config_poll_seconds)
        try:
            source.load()
        except config.ConfigError as exc:
            raise click.ClickException(f"gateway config {config_file}: {exc}") from None
        background = [source.run]
        where = f"config {config_file}"
    else:
        from llmserver_gateway import discovery, kubeapi  # only Kubernetes mode needs the client library

        try:  # fail fast with one clear line instead of a retry loop when there is no cluster to talk to
            kubeapi.load_configuration()
        except kubeapi.KubernetesConfigError as exc:
            raise click.ClickException(str(exc)) from None
        watcher = discovery.KubernetesSource(gateway_settings, routes, keys)
        background = [watcher.run]
        where = f"Kubernetes (namespace {gateway_settings.namespace or 'all'})"
    application = app.create_app(gateway_settings, routes, keys, background)
    log.info("gateway listening on http://%s:%d, routes from %s", host, port, where)
    web.run_app(
        application, host=host, port=port, handler_cancellation=True, access_log=None, print=None,
        shutdown_timeout=10.0, loop=_event_loop(),
    )


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (a dependency on Linux and macOS): bench/gateway.py measured ~20% less
    gateway CPU per streamed request and a higher paced throughput with it; the stdlib loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
