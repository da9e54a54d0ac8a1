"""`llmserver unload-model NAME`: free a model's resources, keep its definition."""

from __future__ import annotations

import pathlib

import click

from llmserver_cli import cluster
from llmserver_cli.commands import scaling


@click.command("unload-model")
@scaling.options
def command(target: cluster.Target, name: str, local: bool, state_dir: pathlib.Path | None) -> None:
    """Unload NAME without deleting it.

    In a cluster the LLMServer is scaled to zero replicas (the count is remembered for
    `load-model`); with --local the running `llmserver up` stops its process and the gateway
    answers 503 for it until `load-model`. With spec.autoscaling the block is set aside too (kept in
    an annotation; locally: no hold, no fallback, no wake), so no request brings the model back.
    """
    scaling.run("unload", name, local, state_dir, target)
