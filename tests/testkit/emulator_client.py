"""A raw HTTP client for tests of the API emulator itself: no client library between test and server."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any

from testkit import emulator


@dataclasses.dataclass
class Answer:
    """One HTTP answer: status code, parsed body and headers."""

    code: int
    body: Any
    headers: Any


def call(kube: emulator.KubeEmulator, method: str, path: str, body: Any = None, content_type: str = "application/json",
         token: str | None = None) -> Answer:
    """One request to the emulator, errors included (no client library between the test and the server)."""
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(kube.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, json.loads(response.read()), response.headers)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, json.loads(exc.read()), exc.headers)


def configmap(name: str, **meta: Any) -> dict[str, Any]:
    """A ConfigMap manifest with extra metadata."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"a": "1"}}


def owner_ref(owner: dict[str, Any], block: bool = False) -> dict[str, Any]:
    """An ownerReference to `owner` (blockOwnerDeletion when `block`)."""
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"]}
    return {**ref, "blockOwnerDeletion": True} if block else ref
