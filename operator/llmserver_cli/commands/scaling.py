"""Unload and load without deleting: what `unload-model` and `load-model` share.

In a cluster, unloading scales `spec.replicas` to 0 and remembers the previous count in the
annotation `serving.llmserver.dev/unloaded-replicas`; loading puts it back (1 if unknown) and
drops the annotation. Locally the running `llmserver up` stops or restarts the process.
"""

from __future__ import annotations

import pathlib
from typing import Any

import click
import rich.console

from llmserver_cli import cluster
from llmserver_cli.local import client, settings

ANNOTATION = "serving.llmserver.dev/unloaded-replicas"


def unload_patch(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that unloads `obj`; None when it is already unloaded."""
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    if replicas == 0:
        return None
    return {"metadata": {"annotations": {ANNOTATION: str(replicas)}}, "spec": {"replicas": 0}}


def load_patch(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that loads `obj` again; None when it already has replicas."""
    if int((obj.get("spec") or {}).get("replicas", 1)) > 0:
        return None
    remembered = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION, "1")
    try:
        replicas = max(1, int(remembered))
    except ValueError:
        replicas = 1
    return {"metadata": {"annotations": {ANNOTATION: None}}, "spec": {"replicas": replicas}}


def run(action: str, name: str, local: bool, state_dir: pathlib.Path | None, target: cluster.Target) -> None:
    """Performs `action` ("load" or "unload") on the server `name` and says what happened."""
    console = rich.console.Console(soft_wrap=True)
    if local:
        paths = settings.LocalSettings(**({"state_dir": state_dir} if state_dir else {}))
        try:
            result = client.act(paths.state_file, name, action)
        except (client.NotRunning, client.ControlError) as error:
            raise click.ClickException(str(error)) from None
        console.print(f"{result.name} ({result.model}): {result.phase}" + (f": {result.message}" if result.message else ""),
                      highlight=False, markup=False)
        return
    api = cluster.Cluster(target)
    obj = api.require(name)
    patch = unload_patch(obj) if action == "unload" else load_patch(obj)
    where = f"LLMServer {api.namespace}/{name}"
    if patch is None:
        console.print(f"{where} is already {action}ed", highlight=False)
        return
    api.patch(name, patch)
    console.print(f"{where}: replicas → {patch['spec']['replicas']}", highlight=False)


def options(func: Any) -> Any:
    """NAME, --local and --state-dir, plus the cluster options."""
    func = click.option("--state-dir", type=click.Path(path_type=pathlib.Path),
                        help="Local mode state [env LLMSERVER_STATE_DIR].")(func)
    func = click.option("--local", is_flag=True, help="Act on the running `llmserver up` instead of a cluster.")(func)
    func = click.argument("name")(func)
    return cluster.options(func)
