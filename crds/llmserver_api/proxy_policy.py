"""Which Proxy upstreams an LLMServer may name, and which Secrets a Proxy may send (house rule 13).

An LLMServer author chooses `spec.proxy.url`, and the gateway POSTs there with the key of
`spec.proxy.apiKeySecretRef`: left open, that is a request forgery from the gateway's network
position (loopback, cloud metadata, cluster services) and a way to mail any Secret of the
namespace to a host of the author's choice. So a cluster-level allowlist (operator and gateway
setting `proxy_allowed_hosts`, chart `proxy.allowedHosts`) decides; unlisted, only public hosts
pass. The operator checks the literal URL (`check_url`) and reports a refusal as a condition; the
gateway checks it again at request time and checks every address the name resolves to
(`check_address`), connecting only to checked addresses. A Secret is sent only when it carries the
label `serving.llmserver.dev/proxy-key: "true"`. Pure and stdlib-only: both sides share it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable, Mapping

PROXY_KEY_LABEL = "serving.llmserver.dev/proxy-key"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that resolve inside the cluster or the node whatever public DNS says.
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".svc", ".cluster.local", ".home.arpa")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # "127.1", "2130706433", "0x7f.1": legacy IPv4 forms
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


def secret_opted_in(labels: Mapping[str, str] | None) -> bool:
    """Whether a Secret's labels allow a Proxy LLMServer to send its value to a provider."""
    return (labels or {}).get(PROXY_KEY_LABEL) == "true"


@dataclasses.dataclass(frozen=True)
class HostPolicy:
    """The allowlist: exact host names, `*.domain` suffixes, IPs and CIDRs; plus the cluster's own
    pod/service CIDRs, which are refused unless listed (they may be public ranges)."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    cluster_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, allowed_hosts: Iterable[str] = (), cluster_cidrs: Iterable[str] = ()) -> HostPolicy:
        """The policy from setting values; ValueError names an entry that is none of the forms."""
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in allowed_hosts:
            entry = raw.strip().lower().strip("[]")
            if not entry:
                continue
            if entry.startswith("*."):
                if not _HOST_NAME.match(entry[2:]):
                    raise ValueError(f"allowed Proxy host {raw!r} is not `*.` followed by a domain")
                suffixes.append("." + entry[2:].rstrip("."))
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.match(entry):
                raise ValueError(f"allowed Proxy host {raw!r} is not a host name, `*.domain`, IP or CIDR")
            names.add(entry.rstrip("."))
        clusters = tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cluster_cidrs if cidr.strip())
        return cls(frozenset(names), tuple(suffixes), tuple(networks), clusters)

    def listed_name(self, host: str) -> bool:
        """Whether `host` is allowed by name: then whatever it resolves to is trusted."""
        host = host.lower().rstrip(".")
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def check_url(self, url: str) -> str | None:
        """Why `url` may not be a Proxy upstream by its text alone, or None (then the gateway still
        checks the addresses its host resolves to)."""
        if any(ch in url for ch in "\\ \t\r\n"):
            return "the URL contains a backslash or whitespace"
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            return "the URL cannot be parsed"
        del port
        if parts.scheme not in ("http", "https"):
            return "the URL must start with http:// or https://"
        if "?" in url or "#" in url:
            return "the URL must not carry a query or fragment (it is a base URL the request path is joined to)"
        if "@" in parts.netloc:
            return "the URL must not carry user information"
        host = (parts.hostname or "").lower()
        if not host:
            return "the URL has no host"
        try:
            return self.check_address(host)
        except ValueError:
            pass  # a name, not an address
        if self.listed_name(host):
            return None
        if not _HOST_NAME.match(host):
            return f"host {host!r} is not a valid host name"
        name = host.rstrip(".")
        if _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
            return f"host {host!r} is a non-canonical IP address"
        if "." not in name:
            return (f"host {host!r} is a single-label name, which resolves inside the cluster; "
                    "list it in proxy.allowedHosts")
        if name == "localhost" or name.endswith(_INTERNAL_SUFFIXES) or ".svc." in f"{name}.":
            return f"host {host!r} is a cluster-internal or local name; list it in proxy.allowedHosts"
        return None

    def check_address(self, address: str) -> str | None:
        """Why a Proxy may not connect to `address` (an IP), or None. ValueError when it is no IP."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.networks):
            return None
        if any(ip in network for network in self.cluster_networks):
            kind = "a cluster pod/service"
        elif ip.is_loopback:
            kind = "a loopback"
        elif ip.is_link_local:
            kind = "a link-local (cloud metadata)"
        elif ip.is_unspecified or ip.is_multicast or ip.is_reserved:
            kind = "a reserved"
        elif ip.is_private or not ip.is_global:
            kind = "a private"
        else:
            return None
        return f"{ip} is {kind} address; list it in proxy.allowedHosts to allow it"
