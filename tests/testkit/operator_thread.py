"""Runs the real operator (kopf + our handlers) on a thread against the API emulator.

Usage::

    with operator_thread.OperatorThread(kube.kubeconfig, gateway_url="http://gw/v1") as op:
        ...   # the operator reconciles; op.stop() (or leaving the block) shuts it down cleanly

Several can run one after the other (an operator restart); each has its own kopf registry and memo.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Self

import kopf
from llmserver_operator import handlers
from llmserver_operator import settings as settings_mod


class OperatorThread:
    """kopf.operator() in its own event loop and thread; start() returns once kopf is ready."""

    def __init__(self, kubeconfig: str, namespaces: list[str] | None = None, **settings: Any) -> None:
        self.settings = settings_mod.Settings(kubeconfig=kubeconfig, namespaces=namespaces or [], **settings)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: list[BaseException] = []
        self.memo: kopf.Memo | None = None

    def _main(self) -> None:
        registry = kopf.OperatorRegistry()
        handlers.register(registry, apple=self.settings.apple_enabled)
        self.memo = handlers.make_memo(self.settings)
        try:
            asyncio.run(kopf.operator(
                registry=registry,
                memo=self.memo,
                standalone=True,
                clusterwide=not self.settings.namespaces,
                namespaces=self.settings.namespaces,
                stop_flag=self._stop,
                ready_flag=self._ready,
            ))
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self._error.append(exc)
            self._ready.set()

    def start(self, timeout: float = 60.0) -> OperatorThread:
        """Starts kopf and waits until its watchers run."""
        self._thread = threading.Thread(target=self._main, name="llmserver-operator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the operator did not become ready")
        if self._error:
            raise RuntimeError("the operator failed to start") from self._error[0]
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Asks kopf to stop and waits for the thread; re-raises an operator crash."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("the operator did not stop")
        if self._error:
            raise RuntimeError("the operator crashed") from self._error[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
