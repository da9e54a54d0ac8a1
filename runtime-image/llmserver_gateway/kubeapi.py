"""The gateway's Kubernetes calls: the official (synchronous) `kubernetes` client, off the event loop.

The project uses one Kubernetes client library besides kopf (docs/contracts.md, "Kubernetes
clients"); the gateway's loop must never block on it, so every call runs in a daemon thread of
its own and hands its result back to the loop, and a watch's thread feeds its lines to the loop
as they arrive. Daemon threads, not the loop's executor: a watch blocks for minutes and the
gateway must stop without waiting for it; a watch given up is shut down so its thread ends at once.
Requests go through the client's generic request path (as the operator's `kube.py` does: auth,
TLS, proxies and retries of the library, no per-kind API classes, which cost seconds to import),
and responses are read raw and parsed here, so the library never logs or deserializes a Secret
body, and errors never carry a response body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import kubernetes.client
import kubernetes.config
import kubernetes.dynamic
import kubernetes.dynamic.exceptions

T = TypeVar("T")
_END = object()


class KubernetesConfigError(RuntimeError):
    """Neither in-cluster credentials nor a kubeconfig could be loaded."""


class ApiError(RuntimeError):
    """A non-2xx answer; `status` is the HTTP status. The message names the path, never the body."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"Kubernetes API answered {status} for {what}")
        self.status = status


def load_configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    """In-cluster credentials, else a kubeconfig (KUBECONFIG or ~/.kube/config).

    Raises KubernetesConfigError with a one-line reason when neither is usable.
    """
    configuration = kubernetes.client.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
            kubernetes.config.load_kube_config(
                config_file=path, client_configuration=configuration, persist_config=False)
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise KubernetesConfigError(f"no usable Kubernetes credentials (in-cluster or kubeconfig): {exc}") from None
    return configuration


def api_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    """An API client for the cluster (see load_configuration)."""
    return kubernetes.client.ApiClient(configuration=load_configuration(kubeconfig))


async def in_thread(call: Callable[[], T]) -> T:
    """`call()` in a daemon thread; cancelling the await abandons it (its result is dropped)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = call(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="kube-call", daemon=True).start()
    return await future


class _NoDiscovery:
    """Stands in for the DynamicClient's discoverer: the gateway knows its paths, so no discovery calls."""

    def __init__(self, client: object, cache_file: object) -> None:
        del client, cache_file


class Api:
    """GETs on API paths, answered raw (an unread urllib3 response). Thread-safe, synchronous."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client
        self._dynamic = kubernetes.dynamic.DynamicClient(client, discoverer=_NoDiscovery)

    def get(self, path: str, timeout: float | tuple[float, float], **params: Any) -> Any:
        """The response to GET `path`; ApiError on a non-2xx answer."""
        try:
            return self._dynamic.request("get", path, serialize=False, _preload_content=False,
                                         _request_timeout=timeout, **params)
        except kubernetes.dynamic.exceptions.DynamicApiError as exc:
            raise ApiError(int(exc.status or 0), path) from None

    def close(self) -> None:
        """Closes the connection pool."""
        self.client.close()


def _read_json(response: Any) -> dict[str, Any]:
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


async def list_objects(api: Api, path: str) -> tuple[list[dict[str, Any]], str]:
    """One list call: the items as raw dicts and the list's resourceVersion."""
    body = await in_thread(lambda: _read_json(api.get(path, 60)))
    return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion") or "")


async def read_secret(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    """A Secret by name (GET only: the gateway may not list Secrets), or None when it does not exist."""
    def call() -> dict[str, Any] | None:
        try:
            return _read_json(api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}", 30))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    return await in_thread(call)


async def watch_events(api: Api, path: str, version: str, seconds: int) -> AsyncIterator[dict[str, Any]]:
    """The events of one watch from `version`, until the server ends it after about `seconds`.

    Raises when the watch answers something that is not a watch event. Leaving the loop early
    (or cancelling it) shuts the connection down, which ends the reading thread.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[Any] = asyncio.Queue()
    given_up = threading.Event()
    opened: list[Any] = []

    def put(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(lines.put_nowait, item)

    def pump() -> None:
        try:
            response = api.get(  # "true" spelled as client-go and kubectl send it
                path, (10, seconds + 30), watch="true", resource_version=version, allow_watch_bookmarks="true",
                timeout_seconds=seconds)
            opened.append(response)
            try:
                if given_up.is_set():  # given up while connecting: the loop's shutdown missed it
                    return
                for line in response:
                    if given_up.is_set():
                        return
                    put(line)
            finally:
                response.close()  # the server ended the watch, or we gave up: never back to the pool
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the loop
            put(exc if not given_up.is_set() else _END)

    threading.Thread(target=pump, name=f"kube-watch {path}", daemon=True).start()
    try:
        while (item := await lines.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            if not item.strip():
                continue
            event = json.loads(item)
            if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not isinstance(
                event.get("object"), dict
            ):
                raise RuntimeError("the watch answered something that is not a watch event")
            yield event
    finally:
        given_up.set()
        for response in opened:
            _shut(response)


def _shut(response: Any) -> None:
    """Wakes a thread blocked reading the response: shutdown(SHUT_RD) where urllib3 has it (2.3+);
    otherwise the thread ends by itself when the server ends the watch."""
    with contextlib.suppress(Exception):
        response.shutdown()
