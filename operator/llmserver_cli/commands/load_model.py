"""`llmserver load-model NAME`: bring back a model unloaded with `unload-model`."""

from __future__ import annotations

import pathlib

import click

from llmserver_cli import cluster
from llmserver_cli.commands import scaling


@click.command("load-model")
@scaling.options
def command(target: cluster.Target, name: str, local: bool, state_dir: pathlib.Path | None) -> None:
    """Load NAME again.

    In a cluster the replicas remembered by `unload-model` are restored (1 if none); with --local
    the running `llmserver up` starts the process again (also after a failure). With spec.autoscaling
    the block set aside by `unload-model` is restored (replicas within its bounds); a cold model
    (scaled to zero) is loaded now and may scale to zero again when idle.
    """
    scaling.run("load", name, local, state_dir, target)
