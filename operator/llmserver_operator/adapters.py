"""Live adapters: the operator loads and unloads spec.adapters on each ready replica of an engine
that can (vLLM, transformers) through the runtime's `POST /v1/load_lora_adapter` and
`/v1/unload_lora_adapter` (vLLM's endpoints and bodies), so adding or removing one never restarts
the model.

Replicas come from the server Service's EndpointSlices (ready endpoints, as the gateway sees
them); what each holds is read from its own `/v1/models` (entries `<model>:<name>` whose parent is
the model). In-cluster runtimes take no API key (the per-server NetworkPolicy admits the gateway
and the operator only), so none is sent. Calls are bounded by timeouts; a replica that does not
answer, or answers 5xx, is tried again by the next pass (the reconciler asks for one with
backoff), and a replica that becomes ready triggers a pass by its pod's change.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import urllib3

LOG = logging.getLogger(__name__)
Manifest = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Replica:
    """One ready endpoint of the server's Service."""

    address: str
    port: int
    pod: str

    def url(self, path: str) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}{path}"


def ready_replicas(slices: Sequence[Manifest]) -> list[Replica]:
    """Ready endpoints of the Service's EndpointSlices (the `http` port, else the first), by pod."""
    out: dict[tuple[str, int], Replica] = {}
    for slice_ in slices:
        ports = slice_.get("ports") or []
        port = next((p.get("port") for p in ports if p.get("name") == "http"), ports[0].get("port") if ports else None)
        if port is None:
            continue
        for endpoint in slice_.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False or not endpoint.get("addresses"):
                continue
            pod = (endpoint.get("targetRef") or {}).get("name") or endpoint["addresses"][0]
            address = endpoint["addresses"][0]
            out[(address, int(port))] = Replica(address, int(port), pod)
    return sorted(out.values(), key=lambda r: (r.pod, r.address, r.port))


@dataclasses.dataclass
class Result:
    """What the replicas hold after one sync."""

    held: dict[str, int] = dataclasses.field(default_factory=dict)  # adapter -> replicas serving it
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # adapter -> why a replica refused it (4xx)
    unloading: dict[str, int] = dataclasses.field(default_factory=dict)  # not wanted, still held -> replicas
    incomplete: bool = False  # a replica did not answer or failed (5xx): try again later
    replicas: int = 0  # ready replicas asked


class _Unreachable(Exception):
    """The replica did not answer, or answered 5xx: worth another try."""


class AdapterSync:
    """Brings each replica's loaded adapters to the wanted set (`load=False`: only counts them)."""

    def __init__(self, connect_timeout: float = 2.0, read_timeout: float = 120.0) -> None:
        # urllib3 comes with the kubernetes client; no retries of its own (the next pass retries)
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                                        retries=False, maxsize=4)

    def close(self) -> None:
        self.http.clear()

    def _call(self, method: str, url: str, body: Manifest | None = None) -> tuple[int, bytes]:
        try:
            answer = self.http.request(method, url, body=json.dumps(body).encode() if body is not None else None,
                                       headers={"Content-Type": "application/json"} if body is not None else None)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Unreachable(f"{url}: {exc.__class__.__name__}") from None
        if answer.status >= 500:
            raise _Unreachable(f"{url}: HTTP {answer.status}")
        return answer.status, answer.data

    def held(self, replica: Replica, model: str) -> set[str]:
        """Names of the adapters the replica serves now, from its `/v1/models`."""
        status, data = self._call("GET", replica.url("/v1/models"))
        if status != 200:
            raise _Unreachable(f"{replica.url('/v1/models')}: HTTP {status}")
        try:
            entries = json.loads(data).get("data") or []
        except (ValueError, AttributeError):
            raise _Unreachable(f"{replica.url('/v1/models')}: not a model list") from None
        prefix = f"{model}:"
        return {e["id"][len(prefix):] for e in entries
                if isinstance(e, dict) and str(e.get("id", "")).startswith(prefix) and e.get("parent", model) == model}

    def sync(self, model: str, wanted: Mapping[str, str], replicas: Sequence[Replica], load: bool = True) -> Result:
        """Loads what is `wanted` (name -> path) and unloads what is not, on every replica."""
        result = Result(replicas=len(replicas))
        for replica in replicas:
            try:
                holds = self.held(replica, model)
                if load:
                    holds = self._converge(replica, holds, wanted, result)
            except _Unreachable as exc:
                LOG.info(f"adapters on replica {replica.pod}: {exc}")
                result.incomplete = True
                continue
            for name in holds:
                target = result.held if name in wanted else result.unloading
                target[name] = target.get(name, 0) + 1
        return result

    def _converge(self, replica: Replica, holds: set[str], wanted: Mapping[str, str], result: Result) -> set[str]:
        now = set(holds)
        for name in sorted(set(wanted) - holds):
            status, data = self._call("POST", replica.url("/v1/load_lora_adapter"),
                                      {"lora_name": name, "lora_path": wanted[name]})
            if status == 200:
                now.add(name)
            else:
                result.errors[name] = f"replica {replica.pod} refused to load it: HTTP {status}: {_message(data)}"
        for name in sorted(holds - set(wanted)):
            status, data = self._call("POST", replica.url("/v1/unload_lora_adapter"), {"lora_name": name})
            if status in (200, 404):  # 404: already gone
                now.discard(name)
            else:
                result.incomplete = True
                LOG.info(f"replica {replica.pod} kept adapter {name}: HTTP {status}: {_message(data)}")
        return now


def _message(data: bytes) -> str:
    """The OpenAI-shaped error's message, else the body's start."""
    try:
        return str(json.loads(data)["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return data[:300].decode(errors="replace")
