"""`llmserver remove-server NAME`: the reverse of `add-server`.

In a cluster it deletes the LLMServer (by name, or by the model name it serves); Kubernetes
garbage-collects its Deployment, Service, Jobs and the rest through their ownerReferences, and the
downloaded model stays in the shared cache PVC. With `--local` it takes the server out of the
local set instead; a running `llmserver up` that serves the set routes it away and stops it
within a second.
"""

from __future__ import annotations

import pathlib
from typing import Any

import click
import rich.console

from llmserver_cli import cluster
from llmserver_cli.local import server_set, settings, state


@click.command("remove-server")
@click.argument("name")
@click.option("--local", is_flag=True, help="Remove it from the local set `llmserver up` serves, not from a cluster.")
@click.option("--state-dir", type=click.Path(path_type=pathlib.Path),
              help="The state dir holding the local set [env LLMSERVER_STATE_DIR].")
@cluster.options
def command(name: str, local: bool, state_dir: pathlib.Path | None, target: cluster.Target) -> None:
    """Remove server NAME (its name or model name): delete the LLMServer, or with --local take it
    out of the local set.

    Its downloaded files stay in the cache (locally `llmserver clear-cache NAME` frees them).
    """
    console = rich.console.Console(stderr=True, soft_wrap=True)
    if local:
        _remove_local(name, state_dir, console)
    else:
        _remove_from_cluster(name, target, console)


def _remove_from_cluster(name: str, target: cluster.Target, console: rich.console.Console) -> None:
    api = cluster.Cluster(target)
    found = api.get(name)
    if found is None:  # the model name it serves, as `--local` accepts too
        serving = [obj for obj in api.list() if (obj.get("spec") or {}).get("model") == name]
        if len(serving) != 1:
            names = ", ".join(sorted(_name(obj) for obj in serving))
            why = f"{len(serving)} LLMServers serve that model ({names})" if serving else "no LLMServer serves that model"
            raise cluster.ClusterError(f"LLMServer {name!r} not found in namespace {api.namespace!r}; {why}")
        found = serving[0]
    server = _name(found)
    api.delete(server)
    console.print(f"[green]deleted[/] LLMServer {api.namespace}/{server}; its pods and Jobs follow, "
                  "the cached model files stay", highlight=False)


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _remove_local(name: str, state_dir: pathlib.Path | None, console: rich.console.Console) -> None:
    paths = settings.LocalSettings(**({"state_dir": state_dir} if state_dir else {}))
    where = server_set.folder(paths)
    removed = server_set.remove(where, name)
    if removed is None:
        held = ", ".join(sorted(m.name for m in server_set.readable(where))) or "nothing"
        raise click.ClickException(f"{name!r} is not in the local set ({where}); it holds: {held}")
    console.print(f"[green]removed[/] {name} from the local set ({removed})", highlight=False)
    running = state.read(paths.state_file)
    if running is not None and running.server(name) is not None:
        console.print(f"the running `llmserver up` (pid {running.pid}) stops serving it within a second", highlight=False)
