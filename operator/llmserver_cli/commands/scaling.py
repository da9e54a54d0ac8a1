"""Unload and load without deleting: what `unload-model` and `load-model` share.

In a cluster, unloading scales `spec.replicas` to 0 and remembers the previous count in the
annotation `serving.llmserver.dev/unloaded-replicas`; loading puts it back (1 if unknown) and
drops the annotation. Locally the running `llmserver up` stops or restarts the process.

With spec.autoscaling the autoscaler owns spec.replicas and would bring an unloaded model back on
its next request (or at once, minReplicas >= 1). So unloading also takes the block out of the
way: it is kept, as JSON, in the annotation `serving.llmserver.dev/unloaded-autoscaling` and
removed from the spec (no hold, no fallback: the gateway answers 503 as for any unloaded model);
loading puts it back with the remembered replicas clamped to its [max(1, minReplicas),
maxReplicas]. `load-model` on a cold autoscaled model (replicas 0, block in place) scales it to
max(1, minReplicas) now; the autoscaler may scale it to zero again after scaleDownDelaySeconds.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import click
import rich.console

from llmserver_cli import cluster
from llmserver_cli.local import client, settings

ANNOTATION = "serving.llmserver.dev/unloaded-replicas"


AUTOSCALING_ANNOTATION = "serving.llmserver.dev/unloaded-autoscaling"


def unload_patch(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that unloads `obj`; None when it is already unloaded."""
    spec = obj.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    block = spec.get("autoscaling")
    if replicas == 0 and block is None:
        return None
    annotations: dict[str, Any] = {ANNOTATION: str(replicas)}
    patch: dict[str, Any] = {"metadata": {"annotations": annotations}, "spec": {"replicas": 0}}
    if block is not None:
        annotations[AUTOSCALING_ANNOTATION] = json.dumps(block, sort_keys=True, separators=(",", ":"))
        patch["spec"]["autoscaling"] = None
    return patch


def _saved_autoscaling(annotations: dict[str, Any]) -> dict[str, Any] | None:
    try:
        block = json.loads(annotations.get(AUTOSCALING_ANNOTATION) or "null")
    except ValueError:
        return None
    return block if isinstance(block, dict) and "maxReplicas" in block else None


def load_patch(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that loads `obj` again; None when it already has replicas."""
    spec = obj.get("spec") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    saved = _saved_autoscaling(annotations)
    if int(spec.get("replicas", 1)) > 0 and AUTOSCALING_ANNOTATION not in annotations:
        return None
    try:
        replicas = max(1, int(annotations.get(ANNOTATION, "1")))
    except ValueError:
        replicas = 1
    block = saved or spec.get("autoscaling")
    if isinstance(block, dict) and "maxReplicas" in block:
        low = max(1, int(block.get("minReplicas", 1)))
        replicas = min(max(replicas, low), max(low, int(block["maxReplicas"])))
    patch: dict[str, Any] = {"metadata": {"annotations": {ANNOTATION: None}}, "spec": {"replicas": replicas}}
    if AUTOSCALING_ANNOTATION in annotations:
        patch["metadata"]["annotations"][AUTOSCALING_ANNOTATION] = None
        if saved is not None:
            patch["spec"]["autoscaling"] = saved
    return patch


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
