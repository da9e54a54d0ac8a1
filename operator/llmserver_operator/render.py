"""`llmserver render`: every object the operator would write for some LLMServer manifests.

The same pure builders the operator uses, so the output is what GitOps users review or commit.
Owner references and hash annotations are left out: they depend on the live LLMServer's uid.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import llmserver_api
import pydantic
import yaml

from llmserver_operator import settings as settings_mod
from llmserver_operator import status
from llmserver_operator.builders import plan

Manifest = dict[str, Any]


class RenderError(ValueError):
    """A manifest that is not a valid LLMServer; the message names the document and the fields."""


def render(documents: Iterable[Any], settings: settings_mod.Settings, namespace: str = "default") -> list[tuple[str, list[Manifest]]]:
    """For each LLMServer document: a one-line summary and its objects (other kinds are skipped)."""
    out: list[tuple[str, list[Manifest]]] = []
    for index, document in enumerate(documents, start=1):
        if not isinstance(document, dict) or document.get("kind") != "LLMServer":
            continue
        name = (document.get("metadata") or {}).get("name", "?")
        try:
            server = llmserver_api.LLMServer.model_validate(document)
        except pydantic.ValidationError as exc:
            raise RenderError(f"document {index} (LLMServer {name}): {status.describe_validation_error(exc.errors())}") from None
        if not server.metadata.namespace:
            server.metadata.namespace = namespace
        where = plan.placement(server.spec)
        summary = {
            plan.Placement.KUBERNETES: f"LLMServer {server.metadata.namespace}/{name}: model {server.spec.model!r} on Kubernetes",
            plan.Placement.PROXY: f"LLMServer {server.metadata.namespace}/{name}: Proxy mode, no objects (the gateway forwards)",
            plan.Placement.APPLE: f"LLMServer {server.metadata.namespace}/{name}: runs on a registered Mac, no Kubernetes workload",
        }[where]
        out.append((summary, plan.all_children(server, settings)))
    return out


def to_yaml(rendered: list[tuple[str, list[Manifest]]]) -> str:
    """Multi-document YAML with a comment line per LLMServer."""
    chunks = []
    for summary, objects in rendered:
        chunks.append(f"# {summary}\n")
        for obj in objects:
            chunks.append("---\n" + yaml.safe_dump(obj, sort_keys=False))
    return "".join(chunks)
