"""`llmserver render -f FILE`: print, as YAML, every object the operator would create for the
LLMServers in FILE (`-` reads stdin). Operator settings come from LLMSERVER_OPERATOR_* env, so the
default image catalog applies unless LLMSERVER_OPERATOR_RUNTIME_IMAGES says otherwise. A server no
image flavour fits gets a `NoRuntimeImage` line instead of objects, and the command exits 1."""

from __future__ import annotations

import pathlib
import sys

import click
import yaml

from llmserver_operator import render as render_mod
from llmserver_operator import settings as settings_mod


@click.command("render")
@click.option("-f", "--filename", "files", multiple=True, required=True, help="LLMServer manifest(s); '-' for stdin.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace for manifests without one.")
def command(files: tuple[str, ...], namespace: str) -> None:
    """Print the Kubernetes objects the operator would create for these LLMServers."""
    documents = []
    for name in files:
        try:
            text = sys.stdin.read() if name == "-" else pathlib.Path(name).read_text(encoding="utf-8")
            documents += [doc for doc in yaml.safe_load_all(text) if doc is not None]
        except OSError as exc:
            raise click.ClickException(f"cannot read {name}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise click.ClickException(f"{name} is not valid YAML: {exc}") from None
    try:
        rendered = render_mod.render(documents, settings_mod.Settings(), namespace)
    except render_mod.RenderError as exc:
        raise click.ClickException(str(exc)) from None
    if not rendered:
        raise click.ClickException(f"no LLMServer found in {', '.join(files)}")
    click.echo(render_mod.to_yaml(rendered), nl=False)
    if render_mod.refused(rendered):
        raise click.ClickException("no runtime image fits: " + "; ".join(render_mod.refused(rendered)))
