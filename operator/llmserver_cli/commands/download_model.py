"""`llmserver download-model REPO`: fetch a model into the local cache (the one `llmserver up`
uses), or with --in-cluster pre-warm a cluster's cache PVC with a download Job.

Both run the same downloader (`llmserver-runtime download`), so the files land at the same
cache-relative path (llmserver_api.paths) and are found later without a second download.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import click
import rich.console
import rich.progress

import llmserver_api.paths
from llmserver_cli import cluster
from llmserver_cli.commands import prewarm
from llmserver_cli.hosting import argv as argv_builders
from llmserver_cli.hosting import steps
from llmserver_cli.local import settings


def download_local(
    repo: str,
    file: str | None,
    revision: str,
    force: bool,
    cache_dir: pathlib.Path,
    console: rich.console.Console,
    python: str = sys.executable,
) -> pathlib.Path:
    """Runs the downloader into `cache_dir` with a progress bar fed by its progress lines."""
    target = cache_dir / llmserver_api.paths.huggingface_model_path(repo, revision, file)
    if force and target.is_dir():
        shutil.rmtree(target)  # the whole snapshot (its completion marker included)
    elif force and target.exists():
        target.unlink()  # only this file: the downloader sees it missing and fetches it again
    argv = argv_builders.download_repo(python, repo, file, revision, cache_dir)
    output: list[str] = []
    columns = (
        rich.progress.SpinnerColumn(),
        rich.progress.TextColumn("{task.description}"),
        rich.progress.BarColumn(),
        rich.progress.DownloadColumn(),
        rich.progress.TransferSpeedColumn(),
        rich.progress.TimeRemainingColumn(),
    )
    with rich.progress.Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(repo + (f" / {file}" if file else ""), total=None)
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            env=steps.child_env(dict(os.environ)),
        )  # fmt: skip
        try:
            for line in proc.stdout or []:
                output.append(line.rstrip())
                seen = steps.parse_progress(line)
                if seen is not None:
                    progress.update(task, completed=seen[0], total=seen[1])
            proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=30)
            raise
    if proc.returncode != 0 or not target.exists():
        said = next((line for line in reversed(output) if line.startswith("download failed")), None)
        raise click.ClickException(said or f"download of {repo} failed (exit {proc.returncode}): {' / '.join(output[-3:])}")
    return target


@click.command("download-model")
@click.argument("repo")
@click.option("--file", help="Download only this file of the repo (e.g. one GGUF).")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit.")
@click.option("--force", is_flag=True, help="Delete what the cache holds for it and download again.")
@click.option("--cache-dir", type=click.Path(path_type=pathlib.Path), help="Local cache [env LLMSERVER_CACHE_DIR].")
@click.option("--in-cluster", is_flag=True, help="Pre-warm the cluster's model cache PVC with a download Job instead.")
@click.option("--claim", help="--in-cluster: the cache PVC [default: the operator's shared cache].")
@click.option("--token-secret", metavar="SECRET[:KEY]", help="--in-cluster: Secret with a Hugging Face token.")
@cluster.options
def command(
    target: cluster.Target,
    repo: str,
    file: str | None,
    revision: str,
    force: bool,
    cache_dir: pathlib.Path | None,
    in_cluster: bool,
    claim: str | None,
    token_secret: str | None,
) -> None:
    """Download REPO (OWNER/NAME on the Hugging Face Hub) into the model cache.

    Locally the token comes from env HF_TOKEN. A complete download is skipped and a partial one
    resumed; --force starts over.
    """
    console = rich.console.Console(stderr=True, soft_wrap=True)
    if in_cluster:
        job = prewarm.create(cluster.Cluster(target), repo, file, revision, force, claim, token_secret)
        console.print(f"[green]created[/] Job {job['metadata']['namespace']}/{job['metadata']['name']} "
                      f"(follow it with: kubectl logs -f job/{job['metadata']['name']})", highlight=False)
        return
    if claim or token_secret:
        raise click.UsageError("--claim and --token-secret only apply with --in-cluster (locally: env HF_TOKEN)")
    paths = settings.LocalSettings(**({"cache_dir": cache_dir} if cache_dir else {}))
    path = download_local(repo, file, revision, force, paths.cache_dir, console)
    console.print(f"[green]downloaded[/] {repo} → {path}", highlight=False)
