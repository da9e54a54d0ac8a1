"""Kubernetes discovery: list+watch LLMServers and EndpointSlices, read the Secrets they name.

Each kind has its own loop: list (the full truth), then watch from the list's resourceVersion;
a restart with a fresh list happens every `resync_seconds`, on `410 Gone`, and after any error
(with backoff), so a lost event or an API restart heals by itself. Secrets are read by name with
GET (the chart grants only `get` on Secrets: the gateway never lists every Secret in a namespace)
and re-read every `secret_refresh_seconds`, so a rotated key applies without a restart.
Objects stay raw JSON dicts; `kubeview.build` turns them into routes after every change.
The calls themselves (the official `kubernetes` client, run off the event loop) are in `kubeapi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
from collections.abc import Callable
from typing import Any

import kubernetes.client

import llmserver_api
from llmserver_gateway import auth, kubeapi, kubeview, settings, table

log = logging.getLogger("llmserver.gateway.discovery")

SA_NAMESPACE_FILE = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_WATCH_SECONDS = 240  # server-side timeout of one watch request (below typical proxy idle limits)
_MAX_BACKOFF = 30.0


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
        client_factory: Callable[[], kubernetes.client.ApiClient] = kubeapi.api_client,
    ) -> None:
        self.config = config
        self.routes = routes
        self.keys = keys
        self.client_factory = client_factory
        self.trust = kubeview.Trust(agents_namespace=config.agents_namespace, proxy_hosts=config.proxy_policy())
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
        api = kubeapi.Api(await kubeapi.in_thread(self.client_factory))
        try:
            ns = self.config.namespace
            where = f"/namespaces/{ns}" if ns else ""
            servers_path = f"/apis/{llmserver_api.GROUP}/{llmserver_api.VERSION}{where}/llmservers"
            slices_path = f"/apis/discovery.k8s.io/v1{where}/endpointslices"
            tasks = [
                asyncio.create_task(self._list_watch(api, "llmservers", servers_path, self.servers)),
                asyncio.create_task(self._list_watch(api, "endpointslices", slices_path, self.slices)),
                asyncio.create_task(self._read_secrets(api)),
                asyncio.create_task(self._rebuild_loop()),
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            api.close()

    async def _list_watch(
        self, api: kubeapi.Api, kind: str, path: str, store: dict[kubeview.Ref, dict[str, Any]]
    ) -> None:
        backoff = 1.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                items, version = await kubeapi.list_objects(api, path)
                store.clear()
                store.update({kubeview.ref(item): item for item in items})
                self._synced[kind] = True
                self._changed.set()
                backoff = 1.0
                deadline = loop.time() + self.config.resync_seconds
                while (left := deadline - loop.time()) > 1:
                    began = loop.time()
                    version = await self._watch(api, path, store, version, int(min(left, _WATCH_SECONDS)))
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
        self, api: kubeapi.Api, path: str, store: dict[kubeview.Ref, dict[str, Any]], version: str, seconds: int
    ) -> str | None:
        """Applies watch events until the server ends the watch; the last resourceVersion, or None on 410."""
        async with contextlib.aclosing(kubeapi.watch_events(api, path, version, seconds)) as events:
            async for event in events:
                change, obj = event["type"], event["object"]
                if change == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if change in ("ADDED", "MODIFIED"):
                    store[kubeview.ref(obj)] = obj
                elif change == "DELETED":
                    store.pop(kubeview.ref(obj), None)
                else:
                    continue  # BOOKMARK: only the resourceVersion moves
                self._changed.set()
        return version

    async def _read_secrets(self, api: kubeapi.Api) -> None:
        """GETs every Secret the table needs, on demand and every `secret_refresh_seconds`."""
        while True:
            self._secrets_wanted.clear()
            wanted = set(self._needed)
            if self.keys_secret is not None:
                wanted.add(self.keys_secret)
            changed = False
            for namespace, name in sorted(wanted):
                try:
                    secret = await kubeapi.read_secret(api, namespace, name)
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
        view = kubeview.build(self.servers.values(), self.slices.values(), self.secrets, self.trust)
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

