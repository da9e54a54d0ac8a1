"""Where the requests are: every gateway replica's `GET /internal/load`, summed per LLMServer.

The gateway replicas are the ready endpoints of the gateway Service's EndpointSlices (label
`kubernetes.io/service-name`), so two or more replicas are all counted without Prometheus. Each is
read with a short timeout; a replica that does not answer makes the round incomplete (no
scale-down then, decision.py) instead of counting as zero requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

Manifest = dict[str, Any]
SERVICE_LABEL = "kubernetes.io/service-name"
LOAD_PATH = "/internal/load"
MAX_LOAD_BYTES = 4 * 1024 * 1024  # a gateway's answer is one small entry per server


@dataclasses.dataclass(frozen=True)
class ServiceRef:
    """The gateway Service, from the setting `namespace/name`."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, value: str) -> ServiceRef:
        """`namespace/name`; ValueError otherwise."""
        namespace, _, name = value.strip().partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"the gateway Service must be namespace/name, not {value!r}")
        return cls(namespace, name)

    @property
    def labels(self) -> dict[str, str]:
        """The label that selects this Service's EndpointSlices."""
        return {SERVICE_LABEL: self.name}


def _port(slice_: Mapping[str, Any]) -> int | None:
    ports = [port for port in slice_.get("ports") or [] if isinstance(port, Mapping) and port.get("port")]
    named = [port for port in ports if port.get("name") == "http"]
    chosen = (named or ports or [None])[0]
    return int(chosen["port"]) if chosen is not None else None


def _host(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:  # an FQDN slice
        return address


def load_urls(slices: Iterable[Mapping[str, Any]]) -> list[str]:
    """`http://ADDR:PORT/internal/load` of every ready endpoint (port named `http`, else the first)."""
    urls: set[str] = set()
    for slice_ in slices:
        port = _port(slice_)
        if port is None:
            continue
        for endpoint in slice_.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if (endpoint.get("conditions") or {}).get("ready") is False or not addresses:
                continue  # unset means ready (the EndpointSlice API); one pod, one address to ask
            urls.add(f"http://{_host(str(addresses[0]))}:{port}{LOAD_PATH}")
    return sorted(urls)


@dataclasses.dataclass(frozen=True)
class ServerLoad:
    """One server's requests at the gateways that answered."""

    in_flight: int = 0
    held: int = 0
    refused: int = 0  # refused at once while cold (holdSeconds 0) in the gateway's last 10 s


@dataclasses.dataclass(frozen=True)
class Load:
    """One round over every gateway replica: servers keyed `namespace/name`."""

    servers: dict[str, ServerLoad]
    asked: int
    answered: int

    @property
    def complete(self) -> bool:
        """Every gateway answered (and there was at least one)."""
        return self.asked > 0 and self.answered == self.asked


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return int(value)


def parse(answer: object) -> dict[str, ServerLoad]:
    """One gateway's JSON, `{"servers": {"ns/name": {"model", "inFlight", "held", "refused"}}}` (`refused`
    optional: older gateways lack it); ValueError if malformed.
    Static-config routes (`static/<model>`) belong to no LLMServer and are left out."""
    servers = answer.get("servers") if isinstance(answer, dict) else None
    if not isinstance(servers, dict):
        raise ValueError("no `servers` object")
    out: dict[str, ServerLoad] = {}
    for key, entry in servers.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{key}: not an object")
        if key.startswith("static/"):
            continue
        out[str(key)] = ServerLoad(
            _count(entry.get("inFlight", 0)), _count(entry.get("held", 0)), _count(entry.get("refused", 0)))
    return out


def total(answers: Iterable[Mapping[str, ServerLoad]]) -> dict[str, ServerLoad]:
    """Per-server sums over the gateways' answers."""
    summed: dict[str, ServerLoad] = {}
    for answer in answers:
        for key, load in answer.items():
            before = summed.get(key, ServerLoad())
            summed[key] = ServerLoad(
                before.in_flight + load.in_flight, before.held + load.held, before.refused + load.refused)
    return summed


async def _ask(session: aiohttp.ClientSession, url: str, timeout: float) -> dict[str, ServerLoad] | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False) as reply:
            if reply.status != 200:
                return None
            body = await reply.content.read(MAX_LOAD_BYTES + 1)
            if len(body) > MAX_LOAD_BYTES:
                return None
            return parse(json.loads(body))
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, UnicodeDecodeError):
        return None


async def scrape(session: aiohttp.ClientSession, urls: list[str], timeout: float) -> Load:
    """Asks every gateway at once; a failed or malformed answer counts as not answered."""
    answers = await asyncio.gather(*(_ask(session, url, timeout) for url in urls))
    good = [answer for answer in answers if answer is not None]
    return Load(total(good), asked=len(urls), answered=len(good))
