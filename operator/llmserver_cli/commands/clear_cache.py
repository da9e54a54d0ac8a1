"""`llmserver clear-cache [NAME | --all]`: free the local model cache (the one `llmserver up` and
`download-model` share), never what a running `llmserver up` serves.

NAME is a server of the local set or of the running `up` (its model and adapters), a source as
`download-model` takes it (OWNER/NAME: every revision and file of the repo; s3://BUCKET/KEY;
https://HOST/FILE#sha256=HEX), or a path inside the cache. A server of the running `up` protects
its files whatever its phase (an unloaded one loads them again on its next request): asking for
them is refused with exit status 1 and nothing is deleted; --all deletes everything else, names
what it kept and exits 1 too. The last line says how many bytes were freed.
"""

from __future__ import annotations

import pathlib
import sys

import click
import rich.console

import llmserver_api
import llmserver_api.paths
import llmserver_api.sources
from llmserver_api import units
from llmserver_cli.commands import source_arg
from llmserver_cli.hosting import sources
from llmserver_cli.local import cache_clear, cache_use, server_set, settings, state


class Protected(click.ClickException):
    """What was asked for is in use by a running `llmserver up` (exit status 1)."""


def _in_use(paths: settings.LocalSettings) -> dict[str, list[pathlib.Path]]:
    """Server name -> the paths the running `up` of this state dir uses (empty when none runs)."""
    running = state.read(paths.state_file)
    if running is None:
        return {}
    used = cache_use.read(cache_use.file_of(paths.state_dir), running.pid)
    if used is None:
        raise Protected(f"`llmserver up` (pid {running.pid}) is starting and has not said yet which models it "
                        "uses; try again in a moment")  # fmt: skip
    return {name: [pathlib.Path(p) for p in found] for name, found in used.items()}


def _entries(found: list[pathlib.Path], cache_dir: pathlib.Path) -> list[pathlib.Path]:
    """The cache entries holding `found` (paths outside the cache are not ours to delete)."""
    inside = [path for path in found if path.is_relative_to(cache_dir) and path != cache_dir]
    return sorted({cache_clear.entry_of(path, cache_dir) for path in inside})


def _source_paths(name: str, cache_dir: pathlib.Path) -> list[pathlib.Path] | None:
    """The cache paths a SOURCE string names; None when `name` is no source."""
    try:
        wire = source_arg.parse(name, "NAME")
        source = llmserver_api.sources.Source.model_validate(wire)
    except (source_arg.SourceError, ValueError):
        return None
    if source.hugging_face is not None:
        hf = source.hugging_face
        repo_dir = cache_dir / llmserver_api.paths.huggingface_dir(hf.repo)
        return [repo_dir.parent] if hf.file is None else sorted(repo_dir.parent.glob(f"*/{hf.file}"))
    if source.s3 is not None:
        relative = llmserver_api.paths.s3_path(source.s3.bucket, source.s3.path)
        other_stores = sorted(cache_dir.glob(f"s3-*/{relative.split('/', 1)[1]}"))  # any endpoint's copy
        return [cache_dir / relative, *other_stores]
    found = sources.cached_path(source, cache_dir)
    return [found] if found is not None else None


def targets(name: str, paths: settings.LocalSettings, in_use: dict[str, list[pathlib.Path]]) -> list[pathlib.Path]:
    """What NAME names in the cache (entries, existing or not); UsageError when it names nothing."""
    cache_dir = paths.cache_dir
    for manifest in server_set.readable(server_set.folder(paths)):
        if name in (manifest.name, manifest.server.spec.model):
            return _entries(cache_use.used_by(manifest.server, manifest.origin, cache_dir), cache_dir)
    if name in in_use:
        return _entries(in_use[name], cache_dir)
    found = _source_paths(name, cache_dir)
    if found is not None:
        return found
    candidate = pathlib.Path(name).expanduser()
    candidate = (candidate if candidate.is_absolute() else cache_dir / candidate).absolute()
    if candidate.is_relative_to(cache_dir) and candidate != cache_dir and candidate.exists():
        return [candidate]
    raise click.UsageError(f"{name!r} is no server of the local set or the running `llmserver up`, no source "
                           f"({source_arg.FORMS}) and no path in the cache ({cache_dir})")  # fmt: skip


def _users(target: pathlib.Path, in_use: dict[str, list[pathlib.Path]], cache_dir: pathlib.Path) -> list[str]:
    """The servers of the running `up` whose files `target` would delete."""
    return sorted(
        server for server, found in in_use.items()
        if any(cache_clear.overlaps(target, entry) for entry in _entries(found, cache_dir))
    )  # fmt: skip


def _report(freed: list[cache_clear.Freed], console: rich.console.Console) -> None:
    for item in freed:
        console.print(f"deleted {item.path} ({units.human_bytes(item.bytes)})", highlight=False)
    total = sum(item.bytes for item in freed)
    click.echo(f"freed {total} bytes ({units.human_bytes(total)})")


@click.command("clear-cache")
@click.argument("name", required=False)
@click.option("--all", "everything", is_flag=True, help="Free everything no running server uses.")
@click.option("--cache-dir", type=click.Path(path_type=pathlib.Path), help="Local cache [env LLMSERVER_CACHE_DIR].")
@click.option("--state-dir", type=click.Path(path_type=pathlib.Path),
              help="State dir of the local set and of a running `llmserver up` [env LLMSERVER_STATE_DIR].")
def command(name: str | None, everything: bool, cache_dir: pathlib.Path | None, state_dir: pathlib.Path | None) -> None:
    """Free the local model cache: NAME (a server, a source or a cache path) or --all.

    Files a running `llmserver up` serves are never deleted: asking for them is refused (exit 1).
    The last line is `freed N bytes (...)`.
    """
    if (name is None) == (not everything):
        raise click.UsageError("give NAME or --all (not both)")
    overrides = {k: v for k, v in {"cache_dir": cache_dir, "state_dir": state_dir}.items() if v is not None}
    paths = settings.LocalSettings(**overrides)
    console = rich.console.Console(stderr=True, soft_wrap=True)
    in_use = _in_use(paths)
    if everything:
        keep = sorted({entry for found in in_use.values() for entry in _entries(found, paths.cache_dir)})
        _report(cache_clear.delete(cache_clear.everything_but(paths.cache_dir, keep), paths.cache_dir), console)
        if keep:
            for entry in keep:
                users = ", ".join(_users(entry, in_use, paths.cache_dir))
                console.print(f"kept {entry}: used by {users} of the running `llmserver up`", highlight=False)
            sys.exit(1)
        return
    assert name is not None
    wanted = targets(name, paths, in_use)
    for target in wanted:
        users = _users(target, in_use, paths.cache_dir)
        if users:
            raise Protected(f"refused: {target} is used by {', '.join(users)} of the running `llmserver up`; "
                            "nothing was deleted (remove the server from it first: `llmserver remove-server "
                            "--local NAME`, or stop `llmserver up`)")  # fmt: skip
    if not any(target.exists() for target in wanted):
        console.print(f"nothing cached for {name}", highlight=False)
    _report(cache_clear.delete(wanted, paths.cache_dir), console)
