"""Fault injection for the API emulator: failures, throttling, slowness and dropped watches, on demand.

Why: a real API server answers 500s during upgrades, 429 with Retry-After under priority-and-
fairness, is slow under load and closes watch streams whenever it likes; the operator must ride
through all of them. Tests switch faults on per verb, kind, namespace and name::

    kube.faults.add(verb="patch", kind="LLMServer", subresource="status", status=500, times=2)
    kube.faults.add(verb="create", kind="Deployment", status=429, retry_after=1)
    kube.faults.add(verb="get", kind="Job", delay=0.5)                 # slow, then served
    kube.faults.add(verb="watch", kind="Pod", drop_after=0.2)          # new watches close after 0.2 s
    kube.faults.drop_watches(kind="LLMServer")                         # open watches close now
    kube.faults.clear()

Verbs are the RBAC ones: get, list, watch, create, update, patch, delete, deletecollection.
A kind matches by Kind or plural; None matches anything. `times` bounds how many requests a
fault hits (None: until removed); `fault.hits` counts them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(eq=False)
class Fault:
    """One injected fault and what it matches."""

    verb: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    status: int | None = None  # answer with this code instead of serving the request
    retry_after: float | None = None  # the Retry-After header (429 defaults to 1 s)
    delay: float = 0.0  # seconds before answering (then fails with `status`, or is served)
    drop_after: float | None = None  # watches: close the stream this many seconds after it opened
    message: str = ""
    times: int | None = None
    hits: int = 0

    def matches(self, verb: str, kind: str, plural: str, namespace: str | None, name: str | None,
                subresource: str | None) -> bool:
        """Whether this fault applies to a request with these attributes."""
        return ((self.verb is None or self.verb == verb)
                and (self.kind is None or self.kind in (kind, plural))
                and (self.namespace is None or self.namespace == namespace)
                and (self.name is None or self.name == name)
                and (self.subresource is None or self.subresource == subresource)
                and (self.times is None or self.hits < self.times))

    def reason(self) -> str:
        """The Status reason of the injected code."""
        return {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
                409: "Conflict", 404: "NotFound", 403: "Forbidden"}.get(self.status or 500, "InternalError")


class Faults:
    """The switchable set of faults (thread-safe: tests add them while the server runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._closers: list[Callable[[Callable[[str, str, str | None], bool]], int]] = []

    def add(self, **fields: Any) -> Fault:
        """Adds a fault (fields as in `Fault`) and returns it."""
        fault = Fault(**fields)
        if fault.status == 429 and fault.retry_after is None:
            fault.retry_after = 1
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """Switches one fault off."""
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        """Switches every fault off."""
        with self._lock:
            self._faults.clear()

    @property
    def active(self) -> list[Fault]:
        """The faults still switched on."""
        with self._lock:
            return list(self._faults)

    def take(self, verb: str, kind: str, plural: str, namespace: str | None, name: str | None,
             subresource: str | None) -> Fault | None:
        """The first fault matching a request, counted as hit; None when the request is served normally."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(verb, kind, plural, namespace, name, subresource):
                    fault.hits += 1
                    return fault
        return None

    def on_drop(self, closer: Callable[[Callable[[str, str, str | None], bool]], int]) -> None:
        """The server registers how open watches are closed (closer(predicate) -> streams closed)."""
        self._closers.append(closer)

    def drop_watches(self, kind: str | None = None, namespace: str | None = None) -> int:
        """Closes the open watch streams of a kind (Kind or plural; None: all) now; returns how many."""
        def wanted(watched_kind: str, plural: str, watched_ns: str | None) -> bool:
            return (kind is None or kind in (watched_kind, plural)) and (namespace is None or namespace == watched_ns)

        return sum(closer(wanted) for closer in self._closers)
