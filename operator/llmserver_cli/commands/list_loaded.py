"""`llmserver list-loaded`: the LLMServers of a cluster namespace, or of the running `llmserver up`.

An autoscaled model at zero replicas, which its next request loads (the gateway holds it, or
its fallback answers), shows phase `Cold`; the AUTOSCALING column gives spec.autoscaling's
`min..max` replicas (shown only when some server has it).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import click
import rich.console
import rich.table
import rich.text
import yaml

from llmserver_cli import cluster
from llmserver_cli.local import cache_index, client, display, settings, state


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table (also the JSON/YAML output)."""

    namespace: str
    name: str
    model: str
    mode: str
    backend: str
    capabilities: str
    phase: str
    ready: str
    endpoint: str
    message: str
    autoscaling: str = ""  # "MIN..MAX" replicas of spec.autoscaling; "" when not autoscaled

COLD = "Cold"


def _bounds(block: Any) -> str:
    if not isinstance(block, dict) or "maxReplicas" not in block:
        return ""
    return f"{block.get('minReplicas', 1)}..{block['maxReplicas']}"


def _get(obj: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def cluster_row(item: dict[str, Any]) -> Row:
    """A row from a raw LLMServer object (read leniently: one odd object must not hide the rest)."""
    spec, status = item.get("spec") or {}, item.get("status") or {}
    mode = str(spec.get("mode", "SelfHosted"))
    backend = str(spec.get("backend", "auto"))
    resolved = status.get("resolved") or {}
    if backend == "auto" and resolved.get("backend"):
        backend = f"auto→{resolved['backend']}"
    capabilities = spec.get("capabilities") or resolved.get("capabilities") or []
    phase = str(status.get("phase") or "Pending")
    autoscaling = _bounds(spec.get("autoscaling")) if mode != "Proxy" else ""
    if autoscaling and spec.get("replicas", 1) == 0 and not status.get("readyReplicas"):
        phase = COLD  # the operator says Unloaded; the autoscaler brings it back on a request
    if mode == "Proxy":
        backend, ready = "-", ("yes" if phase == "Ready" else "no")
    else:
        ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"
    return Row(
        namespace=str(_get(item, "metadata", "namespace", default="")),
        name=str(_get(item, "metadata", "name", default="")),
        model=str(spec.get("model", "")),
        mode=mode,
        backend=backend,
        capabilities=",".join(capabilities) or "auto",
        phase=phase,
        ready=ready,
        endpoint=str(status.get("endpoint") or ""),
        message=str(status.get("message") or ""),
        autoscaling=autoscaling,
    )


def local_row(current: state.LocalState, server: state.ServerState) -> Row:
    """A row from the state of the running `llmserver up` (every model is called via its gateway)."""
    ready = ("yes" if server.ready else "no") if server.mode == "Proxy" else ("1/1" if server.ready else "0/1")
    if server.cold:
        ready = "0/0"
    return Row(
        namespace="(local)",
        name=server.name,
        model=server.model,
        mode=server.mode,
        backend=server.backend,
        capabilities=",".join(server.capabilities) or "auto",
        phase=COLD if server.cold else server.phase,
        ready=ready,
        endpoint=f"{current.gateway_url}/v1",
        message=display.detail(server),
        autoscaling=f"{server.min_replicas}..{server.max_replicas}" if server.min_replicas is not None else "",
    )


def render(rows: list[Row], output: str, with_namespace: bool) -> None:
    """Prints the rows as a rich table, JSON or YAML."""
    if output != "table":
        data = [dataclasses.asdict(row) for row in rows]
        click.echo(json.dumps(data, indent=2) if output == "json" else yaml.safe_dump(data, sort_keys=False), nl=output == "json")
        return
    console = rich.console.Console()
    if not console.is_terminal:
        console = rich.console.Console(width=240)  # piped: whole rows, no wrapping
    if not rows:
        console.print("no LLMServers")
        return
    view = rich.table.Table()
    scaled = any(row.autoscaling for row in rows)
    columns = ["NAME", "MODEL", "MODE", "BACKEND", "CAPABILITIES", "PHASE", "READY",
               *(["AUTOSCALING"] if scaled else []), "ENDPOINT", "MESSAGE"]
    for column in (["NAMESPACE"] if with_namespace else []) + columns:
        view.add_column(column, overflow="fold")
    for row in rows:
        phase = rich.text.Text(row.phase, style=display.PHASE_STYLES.get(row.phase, ""))
        cells = [row.name, row.model, row.mode, row.backend, row.capabilities, phase, row.ready,
                 *([row.autoscaling or "-"] if scaled else []), row.endpoint, row.message]
        view.add_row(*(([row.namespace] if with_namespace else []) + cells))
    console.print(view)


def render_cache(found: list[cache_index.CachedDownload], output: str) -> None:
    """The cache's downloads as a table (one line per file digest), JSON or YAML."""
    if output != "table":
        data = [dataclasses.asdict(item) for item in found]
        click.echo(json.dumps(data, indent=2) if output == "json" else yaml.safe_dump(data, sort_keys=False), nl=output == "json")
        return
    console = rich.console.Console() if rich.console.Console().is_terminal else rich.console.Console(width=240)
    if not found:
        console.print("no finished downloads in the model cache")
        return
    view = rich.table.Table()
    for column in ("PATH", "SOURCE", "FILES", "BYTES", "VERIFIED"):
        view.add_column(column, overflow="fold")
    for item in found:
        verified = "\n".join(f"{name} {digest}" for name, digest in sorted(item.digests.items())) or "-"
        view.add_row(item.path, item.source, str(item.files), str(item.bytes), verified)
    console.print(view)


@click.command("list-loaded")
@click.option("--local", is_flag=True, help="Show the servers of the running `llmserver up` instead of a cluster's.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Cluster: LLMServers of every namespace.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True)
@click.option("--state-dir", type=click.Path(path_type=pathlib.Path), help="Local mode state [env LLMSERVER_STATE_DIR].")
@click.option("--details", is_flag=True, help="Only the local model cache: each download, its source and verified checksums.")
@click.option("--cache-dir", type=click.Path(path_type=pathlib.Path), help="--details: local cache [env LLMSERVER_CACHE_DIR].")
@cluster.options
def command(
    target: cluster.Target, local: bool, all_namespaces: bool, output: str, state_dir: pathlib.Path | None,
    details: bool, cache_dir: pathlib.Path | None,
) -> None:
    """List LLMServers: name, mode, backend, capabilities, phase, ready replicas and endpoint.

    With --details: the downloads in the local model cache instead, each with the digests its
    files were verified against (read from the downloader's completion markers)."""
    if details:
        paths = settings.LocalSettings(**({"cache_dir": cache_dir} if cache_dir else {}))
        render_cache(cache_index.downloads(paths.cache_dir), output)
        return
    if local:
        paths = settings.LocalSettings(**({"state_dir": state_dir} if state_dir else {}))
        try:
            current = client.running(paths.state_file)
        except client.NotRunning as error:
            raise click.ClickException(str(error)) from None
        render([local_row(current, server) for server in current.servers], output, with_namespace=False)
        return
    api = cluster.Cluster(target)
    items = sorted(api.list(all_namespaces), key=lambda i: (_get(i, "metadata", "namespace", default=""), _get(i, "metadata", "name", default="")))
    render([cluster_row(item) for item in items], output, with_namespace=all_namespaces)
