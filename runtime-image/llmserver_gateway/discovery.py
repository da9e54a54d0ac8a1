"""Kubernetes discovery: list+watch LLMServers and EndpointSlices, read the Secrets they name.

Each kind has its own loop: list (the full truth), then watch from the list's resourceVersion;
a restart with a fresh list happens every `resync_seconds`, on `410 Gone`, and after any error
(with backoff), so a lost event or an API restart heals by itself. Secrets are read by name with
GET (the chart grants only `get` on Secrets: the gateway never lists every Secret in a namespace)
and re-read every `secret_refresh_seconds`, so a rotated key applies without a restart.
Objects stay raw JSON dicts; `kubeview.build` turns them into routes after every change.
Responses are read with `_preload_content=False`, so the client library never logs a Secret body.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import kubernetes_asyncio.client as k8s
import kubernetes_asyncio.config as k8s_config

import llmserver_api
from llmserver_gateway import auth, kubeview, settings, table

log = logging.getLogger("llmserver.gateway.discovery")

SA_NAMESPACE_FILE = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_WATCH_SECONDS = 240  # server-side timeout of one watch request (below typical proxy idle limits)
_MAX_BACKOFF = 30.0

Lister = Callable[..., Awaitable[aiohttp.ClientResponse]]


async def load_configuration(kubeconfig: str | None = None) -> k8s.Configuration:
    """In-cluster credentials, else a kubeconfig (KUBECONFIG or ~/.kube/config).

    Raises KubernetesConfigError with a one-line reason when neither is usable.
    """
    configuration = k8s.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
            await k8s_config.load_kube_config(
                config_file=path, client_configuration=configuration, persist_config=False)
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        raise KubernetesConfigError(f"no usable Kubernetes credentials (in-cluster or kubeconfig): {exc}") from None
    return configuration


class KubernetesConfigError(RuntimeError):
    """Neither in-cluster credentials nor a kubeconfig could be loaded."""


async def api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    """An API client for the cluster (see load_configuration)."""
    return k8s.ApiClient(configuration=await load_configuration(kubeconfig))


def own_namespace(config: settings.GatewaySettings) -> str:
    """Where the gateway's own Secret lives: --namespace, POD_NAMESPACE, the service account's, else default."""
    if config.namespace:
        return config.namespace
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


class KubernetesSource:
    """Keeps the routing table and key store in step with the cluster."""

    def __init__(
        self,
        config: settings.GatewaySettings,
        routes: table.RoutingTable,
        keys: auth.KeyStore,
        client_factory: Callable[[], Awaitable[k8s.ApiClient]] = api_client,
    ) -> None:
        self.config = config
        self.routes = routes
        self.keys = keys
        self.client_factory = client_factory
        self.servers: dict[kubeview.Ref, dict[str, Any]] = {}
        self.slices: dict[kubeview.Ref, dict[str, Any]] = {}
        self.secrets: dict[kubeview.Ref, dict[str, Any]] = {}
        self._synced = {"llmservers": False, "endpointslices": False}
        self._changed = asyncio.Event()
        self._secrets_wanted = asyncio.Event()
        self._needed: set[kubeview.Ref] = set()
        self._secrets_read: set[kubeview.Ref] = set()  # Secrets attempted at least once
        self._problems: list[str] = []
        self.keys_secret: kubeview.Ref | None = None
        if config.api_keys_secret:
            namespace, _, name = config.api_keys_secret.rpartition("/")
            self.keys_secret = (namespace or own_namespace(config), name)
            keys.required = True  # refuse requests until the keys are read: fail closed

    async def run(self) -> None:
        """Runs until cancelled."""
        client = await self.client_factory()
        try:
            custom = k8s.CustomObjectsApi(client)
            discovery = k8s.DiscoveryV1Api(client)
            core = k8s.CoreV1Api(client)
            ns = self.config.namespace
            group, version, plural = llmserver_api.GROUP, llmserver_api.VERSION, "llmservers"
            list_servers: Lister
            list_slices: Lister
            if ns:
                list_servers = functools.partial(custom.list_namespaced_custom_object, group, version, ns, plural)
                list_slices = functools.partial(discovery.list_namespaced_endpoint_slice, ns)
            else:
                list_servers = functools.partial(custom.list_cluster_custom_object, group, version, plural)
                list_slices = discovery.list_endpoint_slice_for_all_namespaces
            tasks = [
                asyncio.create_task(self._list_watch("llmservers", list_servers, self.servers)),
                asyncio.create_task(self._list_watch("endpointslices", list_slices, self.slices)),
                asyncio.create_task(self._read_secrets(core)),
                asyncio.create_task(self._rebuild_loop()),
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await client.close()

    async def _list_watch(self, kind: str, lister: Lister, store: dict[kubeview.Ref, dict[str, Any]]) -> None:
        backoff = 1.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                items, version = await _list(lister)
                store.clear()
                store.update({kubeview.ref(item): item for item in items})
                self._synced[kind] = True
                self._changed.set()
                backoff = 1.0
                deadline = loop.time() + self.config.resync_seconds
                while (left := deadline - loop.time()) > 1:
                    began = loop.time()
                    version = await self._watch(lister, store, version, int(min(left, _WATCH_SECONDS)))
                    if version is None:
                        break  # 410 Gone: our resourceVersion is too old, list again
                    if loop.time() - began < 1:
                        await asyncio.sleep(1)  # a server ending watches at once must not make us spin
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watching %s failed (%s: %s); relisting in %.0f s", kind, type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _watch(
        self, lister: Lister, store: dict[kubeview.Ref, dict[str, Any]], version: str, seconds: int
    ) -> str | None:
        """Applies watch events until the server ends the watch; the last resourceVersion, or None on 410."""
        # "true" as client-go and kubectl send it (the generated client would send "True").
        response = await lister(
            watch="true", resource_version=version, allow_watch_bookmarks="true", timeout_seconds=seconds,
            _preload_content=False, _request_timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=seconds + 30),
        )
        try:
            _check(response)
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object")
                if not isinstance(kind, str) or not isinstance(obj, dict):
                    raise RuntimeError("the watch answered something that is not a watch event")
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED"):
                    store[kubeview.ref(obj)] = obj
                elif kind == "DELETED":
                    store.pop(kubeview.ref(obj), None)
                else:
                    continue  # BOOKMARK: only the resourceVersion moves
                self._changed.set()
            return version
        finally:
            response.release()

    async def _read_secrets(self, core: k8s.CoreV1Api) -> None:
        """GETs every Secret the table needs, on demand and every `secret_refresh_seconds`."""
        while True:
            self._secrets_wanted.clear()
            wanted = set(self._needed)
            if self.keys_secret is not None:
                wanted.add(self.keys_secret)
            changed = False
            for namespace, name in sorted(wanted):
                try:
                    secret = await _read_secret(core, namespace, name)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("reading Secret %s/%s failed (%s)", namespace, name, type(exc).__name__)
                    continue
                old = self.secrets.get((namespace, name))
                if secret is None:
                    changed |= self.secrets.pop((namespace, name), None) is not None
                elif old is None or old.get("data") != secret.get("data") or old.get("stringData") != secret.get(
                    "stringData"
                ):
                    self.secrets[(namespace, name)] = secret
                    changed = True
            for stale in set(self.secrets) - wanted:
                del self.secrets[stale]
            first_read = not wanted <= self._secrets_read
            self._secrets_read = wanted
            if changed or first_read:
                self._changed.set()
            try:
                await asyncio.wait_for(self._secrets_wanted.wait(), self.config.secret_refresh_seconds)
            except TimeoutError:
                pass

    async def _rebuild_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.02)  # coalesce a burst of events into one rebuild
            self._changed.clear()
            self.rebuild()

    def rebuild(self) -> None:
        """Recomputes routes and keys from the stores (after both initial lists only)."""
        if not all(self._synced.values()):
            return
        view = kubeview.build(self.servers.values(), self.slices.values(), self.secrets)
        self._needed = view.secrets_needed
        wanted = self._needed | ({self.keys_secret} if self.keys_secret else set())
        if not wanted <= self._secrets_read:
            self._secrets_wanted.set()
            if not self.routes.loaded:
                return  # first table: wait for its Secrets, so proxy models do not start out unavailable
        problems = list(view.problems)
        if self.keys_secret is not None:
            where = "/".join(self.keys_secret)
            keys, problem = kubeview.api_keys_from_secret(self.secrets.get(self.keys_secret), where)
            if keys is not None:
                self.keys.replace(keys)
            elif problem:
                problems.append(problem)
                self.keys.replace([])  # no valid keys: refuse everyone rather than open the gateway
        if problems != self._problems:
            for problem in problems:
                log.warning("%s", problem)
            self._problems = problems
        first = not self.routes.loaded
        self.routes.replace(view.routes)
        if first:
            log.info("routing table synced from Kubernetes: %d model(s)", len(view.routes))


async def _list(lister: Lister) -> tuple[list[dict[str, Any]], str]:
    response = await lister(_preload_content=False, _request_timeout=aiohttp.ClientTimeout(total=60))
    try:
        _check(response)
        body = await response.json(content_type=None)
    finally:
        response.release()
    return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion") or "")


async def _read_secret(core: k8s.CoreV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    response = await core.read_namespaced_secret(
        name, namespace, _preload_content=False, _request_timeout=aiohttp.ClientTimeout(total=30)
    )
    try:
        if response.status == 404:
            return None
        _check(response)
        return await response.json(content_type=None)
    finally:
        response.release()


def _check(response: aiohttp.ClientResponse) -> None:
    """Raises on a non-2xx answer; the body is not included (it could be a Secret)."""
    if not 200 <= response.status <= 299:
        raise RuntimeError(f"Kubernetes API answered {response.status} for {response.url.path}")
