"""`llmserver remove-server --local NAME`: take a server out of the local set; a running
`llmserver up` that serves the set routes it away and stops it within a second."""

from __future__ import annotations

import pathlib

import click
import rich.console

from llmserver_cli.local import server_set, settings, state


@click.command("remove-server")
@click.argument("name")
@click.option("--local", is_flag=True, help="Remove it from the local set `llmserver up` serves (required for now).")
@click.option("--state-dir", type=click.Path(path_type=pathlib.Path),
              help="The state dir holding the local set [env LLMSERVER_STATE_DIR].")
def command(name: str, local: bool, state_dir: pathlib.Path | None) -> None:
    """Remove server NAME (its name or model name) from the local set.

    Its downloaded files stay in the cache (`llmserver clear-cache NAME` frees them).
    """
    if not local:
        raise click.UsageError("remove-server works on the local set: give --local "
                               "(in a cluster: kubectl delete llmserver NAME)")  # fmt: skip
    paths = settings.LocalSettings(**({"state_dir": state_dir} if state_dir else {}))
    where = server_set.folder(paths)
    removed = server_set.remove(where, name)
    if removed is None:
        held = ", ".join(sorted(m.name for m in server_set.readable(where))) or "nothing"
        raise click.ClickException(f"{name!r} is not in the local set ({where}); it holds: {held}")
    console = rich.console.Console(stderr=True, soft_wrap=True)
    console.print(f"[green]removed[/] {name} from the local set ({removed})", highlight=False)
    running = state.read(paths.state_file)
    if running is not None and running.server(name) is not None:
        console.print(f"the running `llmserver up` (pid {running.pid}) stops serving it within a second", highlight=False)
