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

from llmserver_operator import images, status
from llmserver_operator import settings as settings_mod
from llmserver_operator.builders import deployment, plan

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
        place = f"LLMServer {server.metadata.namespace}/{name}"
        if where is plan.Placement.KUBERNETES:
            image = deployment.runtime_image(server, settings)
            if image.image is None:
                out.append((f"{place}: {images.REASON}: {image.reason}; no objects", []))
                continue
            summary = f"{place}: model {server.spec.model!r} on Kubernetes, image {image.image} ({image.reason})"
        elif where is plan.Placement.PROXY:
            summary = f"{place}: Proxy mode, no objects (the gateway forwards)"
        else:
            summary = f"{place}: runs on a registered Mac, no Kubernetes workload"
        out.append((summary, plan.all_children(server, settings)))
    return out


def refused(rendered: list[tuple[str, list[Manifest]]]) -> list[str]:
    """The summaries of servers no runtime image fits (the command exits non-zero for them)."""
    return [summary for summary, _ in rendered if f": {images.REASON}: " in summary]


def to_yaml(rendered: list[tuple[str, list[Manifest]]]) -> str:
    """Multi-document YAML with a comment line per LLMServer."""
    chunks = []
    for summary, objects in rendered:
        chunks.append(f"# {summary}\n")
        for obj in objects:
            chunks.append("---\n" + yaml.safe_dump(obj, sort_keys=False))
    return "".join(chunks)
