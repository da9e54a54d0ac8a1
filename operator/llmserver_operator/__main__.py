"""`python -m llmserver_operator`: runs the operator (settings from LLMSERVER_OPERATOR_* env).

With leader election on, kopf runs only while this replica holds the leader Lease (leader.lead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from typing import Any

import kopf

from llmserver_operator import handlers, leader
from llmserver_operator import kube as kube_mod
from llmserver_operator import settings as settings_mod


async def _operate(settings: settings_mod.Settings, stop: threading.Event | None) -> None:
    """kopf.operator with an asyncio stop flag: kopf waits for a threading.Event on an executor
    thread that would keep the process alive after a signal stopped kopf, so a daemon thread
    relays `stop` instead."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, apple=settings.apple_enabled)
    flag = asyncio.Event()
    if stop is not None:
        loop = asyncio.get_running_loop()

        def relay() -> None:
            stop.wait()
            with contextlib.suppress(RuntimeError):  # the loop is already closed: kopf stopped by itself
                loop.call_soon_threadsafe(flag.set)

        threading.Thread(target=relay, name="kopf-stop", daemon=True).start()
    await kopf.operator(
        registry=registry,
        memo=handlers.make_memo(settings),
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
        stop_flag=flag,
    )


def run_kopf(settings: settings_mod.Settings, stop: threading.Event | None = None) -> None:
    """Registers the handlers on a fresh registry and runs kopf until a signal or `stop`."""
    asyncio.run(_operate(settings, stop))


def main() -> None:
    """Reads settings, then runs kopf: at once, or once elected leader."""
    settings = settings_mod.Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.leader_election:
        run_kopf(settings)
        return
    stop = threading.Event()

    def stop_waiting(signum: int, frame: Any) -> None:  # kopf installs its own handlers once it runs
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_waiting)
    kube = kube_mod.Kube(kube_mod.configuration(settings.kubeconfig, pool_size=2))
    elector = leader.LeaderElector(kube, leader.Election.of(settings))
    leader.lead(elector, lambda kopf_stop: run_kopf(settings, kopf_stop), stop,
                liveness_endpoint=settings.liveness_endpoint)


if __name__ == "__main__":
    main()
