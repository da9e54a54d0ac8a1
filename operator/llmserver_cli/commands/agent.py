"""`llmserver agent`: run on a Mac next to the runtime; serves the MLX models placed on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import signal
import time

import click

from llmserver_operator import kube as kube_mod
from llmserver_cli.apple import agent as agent_mod
from llmserver_cli.apple import agent_settings, token_refresh


@click.command("agent")
@click.option("--address", envvar="LLMSERVER_AGENT_ADDRESS", required=True,
              help="IP address the cluster reaches this Mac on.")
@click.option("--name", "node_name", envvar="LLMSERVER_AGENT_NODE_NAME", help="AppleNode name (default: host name).")
@click.option("--memory", "unified_memory", help="Override the detected unified memory, e.g. 64Gi.")
@click.option("--namespace", help="Namespace of the Lease and key Secret (default llmserver-system).")
@click.option("--lease-seconds", type=int, help="Lease duration (default 15).")
@click.option("--port-range-start", type=int, help="First port for runtimes (default 18000).")
@click.option("--bind-host", help="Interface runtimes listen on (default 0.0.0.0).")
@click.option("--kubeconfig", help="Kubeconfig file (default $KUBECONFIG).")
@click.option("--idle-unload-seconds", type=float, help="Stop models unused this long (default: never).")
def command(**options: object) -> None:
    """Register this Mac as an AppleNode and serve the mlx / mlx-vlm LLMServers placed on it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = agent_settings.AgentSettings(**{k: v for k, v in options.items() if v is not None})
    config = kube_mod.configuration(settings.kubeconfig, pool_size=4)
    kube = kube_mod.Kube(config)
    asyncio.run(_run(agent_mod.AppleAgent(settings, kube, _refresher(config, settings.kubeconfig))))


def _refresher(config: object, kubeconfig: str | None) -> token_refresh.TokenRefresher:
    """Refreshes the agent's ServiceAccount token in `config`, and in the kubeconfig file when
    there is exactly one (so a restart finds a valid token)."""
    import kubernetes

    path = kubeconfig or os.environ.get("KUBECONFIG") or ""
    single = pathlib.Path(path).expanduser() if path and os.pathsep not in path else None
    request = token_refresh.token_request(kubernetes.client.ApiClient(config))
    return token_refresh.TokenRefresher(config, kube_mod.bearer_token(config), request, time.time,
                                        kubeconfig=single if single is not None and single.is_file() else None)


async def _run(agent: agent_mod.AppleAgent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await agent.run(stop)
