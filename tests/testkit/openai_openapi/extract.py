"""Cuts OpenAI's published OpenAPI document down to what the conformance tests use.

Run by hand when refreshing the vendored copy:
    python tests/testkit/openai_openapi/extract.py /path/to/openai-openapi/openapi.json COMMIT
It keeps the POST operations of PATHS and every component schema they reach through `$ref`, and
writes `openapi.subset.json` next to this file (the full document is ~3 MB; the subset is enough
to validate bodies and to generate requests)."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

PATHS = ("/chat/completions", "/completions", "/embeddings", "/responses")
HERE = pathlib.Path(__file__).parent


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def subset(document: dict[str, Any], commit: str) -> dict[str, Any]:
    """The document restricted to PATHS' POSTs and the components they reach."""
    paths = {path: {"post": document["paths"][path]["post"]} for path in PATHS}
    components: dict[str, dict[str, Any]] = {}
    pending = _refs(paths)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, section, name = ref.split("/", 3)
        node = _resolve(document, ref)
        components.setdefault(section, {})[name] = node
        pending |= _refs(node) - seen
    info = dict(document["info"])
    info["x-vendored-from"] = f"https://github.com/openai/openai-openapi/blob/{commit}/openapi.json"
    return {"openapi": document["openapi"], "info": info, "paths": paths, "components": components}


def main() -> None:
    source, commit = sys.argv[1], sys.argv[2]
    document = json.loads(pathlib.Path(source).read_text())
    out = HERE / "openapi.subset.json"
    out.write_text(json.dumps(subset(document, commit), indent=1, sort_keys=True) + "\n")
    print(out, out.stat().st_size)


if __name__ == "__main__":
    main()
