"""The Proxy host policy at request time: check the URL, then every address its host resolves to.

Upstreams that tenants wrote (Proxy LLMServers found in Kubernetes) go through their own client
session whose resolver is `GuardedResolver`: it resolves the name once, refuses the whole answer
when any address is not allowed (`llmserver_api.proxy_policy`), and hands aiohttp only checked
addresses, so the connection goes to an address that was checked (no second lookup a rebinding
DNS server could answer differently). Literal IPs never reach a resolver, so `check_url` runs on
every request before it is sent. Redirects are never followed (`allow_redirects=False`).
"""

from __future__ import annotations

import socket

import aiohttp
import aiohttp.abc

from llmserver_api import proxy_policy


class ProxyRefused(OSError):
    """The upstream's host resolves to an address the policy refuses (an OSError: aiohttp then
    raises ClientConnectorDNSError with this as its cause)."""


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """Resolves like aiohttp's default resolver and lets only allowed answers through."""

    def __init__(self, policy: proxy_policy.HostPolicy, inner: aiohttp.abc.AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """The checked addresses of `host`; ProxyRefused when any address is refused."""
        if self.policy.listed_name(host):
            return await self.inner.resolve(host, port, family)
        # An unlisted name is resolved as an absolute name: the cluster's DNS search domains must not
        # turn `svc.namespace` into a cluster Service.
        answers = await self.inner.resolve(host if host.endswith(".") else host + ".", port, family)
        for answer in answers:
            why = self.policy.check_address(answer["host"])
            if why is not None:
                raise ProxyRefused(f"host {host.rstrip('.')!r} resolves to {why}")
        if not answers:
            raise ProxyRefused(f"host {host!r} did not resolve")
        return answers

    async def close(self) -> None:
        """Closes the inner resolver."""
        await self.inner.close()


def refusal(exc: BaseException) -> ProxyRefused | None:
    """The policy refusal behind an aiohttp connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ProxyRefused):
            return seen
        seen = seen.__cause__
    return None
