"""AdapterFailed / AdapterReady Events for Mac-placed servers.

On a Mac the agent writes status.adapters (only it sees the downloads and the runtime), but Events
about an LLMServer are the operator's to post, as they are for cluster servers (where the operator
writes the list and posts from the same diff). So the operator diffs what the agent wrote, from
the LLMServer watch it already has: same reasons, same messages, no extra API reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmserver_operator import adapter_status, events

Key = tuple[str, str]


def _placed_on_mac(body: Mapping[str, Any]) -> bool:
    placement = (body.get("status") or {}).get("placement")
    return isinstance(placement, Mapping) and bool(placement.get("node"))


def _entries(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """status.adapters entries complete enough to compare (name, phase, message as strings)."""
    listed = (body.get("status") or {}).get("adapters")
    if not isinstance(listed, Sequence) or isinstance(listed, str):
        return []
    return [entry for entry in listed if isinstance(entry, Mapping)
            and all(isinstance(entry.get(field), str) for field in ("name", "phase", "message"))]


class MacAdapterEvents:
    """The last status.adapters seen of each Mac-placed server; `observe` says what changed."""

    def __init__(self) -> None:
        self._seen: dict[Key, list[Mapping[str, Any]]] = {}

    def observe(self, key: Key, body: Mapping[str, Any], event_type: str | None) -> list[events.Happened]:
        """Events for the watch event `event_type` of server `key`. The initial listing (None) only
        records (its transitions happened before this operator started, and were posted then); a
        server not on a Mac is not ours to diff here (the reconciler posts its adapter Events)."""
        if event_type == "DELETED" or not _placed_on_mac(body):
            self._seen.pop(key, None)
            return []
        after = _entries(body)
        before = self._seen.get(key)
        self._seen[key] = after
        if event_type is None:
            return []
        return adapter_status.transitions(before, after)
