"""`llmserver add-server --local`: put a server into the local set `llmserver up` serves.

The server was already built and validated like a cluster one (add_server.build); here it is
checked against this machine (its local files exist, no other server of the set serves its model
name) and written; a running `up` of the same state dir starts it on its next poll.
"""

from __future__ import annotations

import pathlib
import re

import click
import rich.console

import llmserver_api
from llmserver_cli.hosting import sources
from llmserver_cli.local import server_set, settings, state


def derived_name(model_path: str) -> str:
    """A server name from the model's file or folder name, for `add-server --local --model-path
    ~/.cache/models/llama-2-7b.Q4_K_M.gguf` (the seed's form, no name): `llama-2-7b-q4-k-m`."""
    last = model_path.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    stem = re.sub(r"\.(gguf|safetensors|bin|pt)$", "", last, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:63].rstrip("-")


class NotAdded(click.ClickException):
    """The server cannot join the local set (exit status 1); nothing was written."""


def add(server: llmserver_api.LLMServer, state_dir: pathlib.Path | None) -> pathlib.Path:
    """Writes `server` into the local set; returns its manifest file."""
    paths = settings.LocalSettings(**({"state_dir": state_dir} if state_dir else {}))
    where = server_set.folder(paths)
    name = server.metadata.name or ""
    problems = sources.check_local(server, server_set.file_of(where, name)) + server_set.conflicts(where, server)
    if problems:
        raise NotAdded("; ".join(problems))
    path, existed = server_set.write(where, server)
    console = rich.console.Console(stderr=True, soft_wrap=True)
    console.print(f"[green]{'updated' if existed else 'added'}[/] {name} (model {server.spec.model}) "
                  f"in the local set: {path}", highlight=False)  # fmt: skip
    running = state.read(paths.state_file)
    if running is None:
        console.print("serve it with: llmserver up", highlight=False)
    else:
        console.print(f"a running `llmserver up` serving the local set (pid {running.pid}, started without -f) "
                      f"picks it up within a second: {running.gateway_url}/v1", highlight=False)  # fmt: skip
    return path
