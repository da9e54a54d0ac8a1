"""kubectl's Table output of the API emulator (`Accept: ...;as=Table`), with CRD printer columns."""

from __future__ import annotations

import datetime
from typing import Any

from testkit import emulator_resources, emulator_select


def age(timestamp: str) -> str:
    """kubectl's AGE text (k8s.io/apimachinery duration.HumanDuration), computed server-side as for CRDs."""
    started = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - started).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


def table(resource: emulator_resources.Resource, items: list[dict[str, Any]], rv: int) -> dict[str, Any]:
    """The Table kubectl asks for: a Name column plus the resource's printer columns (else Age)."""
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    paths = []
    for column in resource.printer_columns or ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},):
        columns.append({"name": column["name"], "type": column.get("type", "string"), "format": column.get("format", ""),
                        "description": column.get("description", ""), "priority": column.get("priority", 0)})
        paths.append(column["jsonPath"])
    rows = []
    for obj in items:
        cells: list[Any] = [obj["metadata"]["name"]]
        for path in paths:
            value = emulator_select.json_path(obj, path)
            if value is not None and path == ".metadata.creationTimestamp":
                value = age(value)
            cells.append("<none>" if value is None else value)
        rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                "metadata": obj["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": str(rv)},
            "columnDefinitions": columns, "rows": rows}
