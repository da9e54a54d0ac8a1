"""`llmserver download-model SOURCE`: fetch a model into the local cache (the one `llmserver up`
uses), or with --in-cluster pre-warm a cluster's cache PVC with a download Job.

SOURCE is a Hub repo (OWNER/NAME), `s3://BUCKET/KEY` (one object), `s3://BUCKET/PREFIX/` (every
object under it) or `https://HOST/FILE#sha256=HEX` (one file, its checksum required). The path of
what was fetched is the last line of stdout.

Both run the same downloader (`llmserver-runtime download`), so the files land at the same
cache-relative path (llmserver_api.paths) and are found later without a second download.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
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


@dataclasses.dataclass(frozen=True)
class Wanted:
    """What to fetch: a label for humans, the downloader's source flags, the cache-relative path."""

    label: str
    source_args: list[str]
    relative: str


def wanted(source: str, file: str | None, revision: str, endpoint: str | None, region: str | None) -> Wanted:
    """Reads SOURCE (a repo, an s3:// URI or an URL with #sha256=); ValueError with the reason."""
    if source.startswith("s3://"):
        bucket, _, rest = source[len("s3://"):].partition("/")
        if not bucket or not rest.strip("/"):
            raise ValueError("an S3 source is s3://BUCKET/KEY or s3://BUCKET/PREFIX/")
        args = ["--s3", source, *(["--s3-endpoint", endpoint] if endpoint else []),
                *(["--s3-region", region] if region else [])]  # fmt: skip
        return Wanted(source, args, llmserver_api.paths.s3_path(bucket, rest, endpoint))
    if endpoint or region:
        raise ValueError("--endpoint and --region only apply to an s3:// source")
    if re.match(r"^[a-z][a-z0-9+.-]*://", source):
        url, _, fragment = source.partition("#")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"only http(s) and s3 URLs are downloaded, not {url!r}")
        sha256 = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else ""
        if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
            raise ValueError("an URL source needs its checksum: https://HOST/FILE#sha256=<64 hex digits>")
        return Wanted(url, ["--url", url, "--sha256", sha256.lower()], llmserver_api.paths.url_path(url, sha256))
    args = ["--repo", source, *(["--file", file] if file else []), "--revision", revision]
    return Wanted(source + (f" / {file}" if file else ""), args,
                  llmserver_api.paths.huggingface_model_path(source, revision, file))  # fmt: skip


def _forget(target: pathlib.Path) -> None:
    """--force: deletes what the cache holds for it (its completion marker included)."""
    if target.is_dir():
        shutil.rmtree(target)
        return
    for path in (target, target.with_name(f".{target.name}.llmserver-download.json"), target.with_name(target.name + ".part")):
        path.unlink(missing_ok=True)  # a file: the downloader sees it missing and fetches it again


def download_local(
    source: Wanted,
    force: bool,
    cache_dir: pathlib.Path,
    console: rich.console.Console,
    python: str = sys.executable,
) -> pathlib.Path:
    """Runs the downloader into `cache_dir` with a progress bar fed by its progress lines."""
    target = cache_dir / source.relative
    if force:
        _forget(target)
    argv = argv_builders.download_source(python, source.source_args, cache_dir)
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
        task = progress.add_task(source.label, total=None)
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
        raise click.ClickException(said or f"download of {source.label} failed (exit {proc.returncode}): {' / '.join(output[-3:])}")
    return target


@click.command("download-model")
@click.argument("repo", metavar="SOURCE")
@click.option("--file", help="Download only this file of the repo (e.g. one GGUF).")
@click.option("--endpoint", help="s3:// only: endpoint URL of an S3-compatible store [default: AWS].")
@click.option("--region", help="s3:// only: region of the bucket.")
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
    endpoint: str | None,
    region: str | None,
    revision: str,
    force: bool,
    cache_dir: pathlib.Path | None,
    in_cluster: bool,
    claim: str | None,
    token_secret: str | None,
) -> None:
    """Download SOURCE into the model cache: OWNER/NAME on the Hugging Face Hub, s3://BUCKET/KEY,
    s3://BUCKET/PREFIX/ or https://HOST/FILE#sha256=HEX. Prints the path as the last line.

    Locally the Hub token comes from env HF_TOKEN and S3 keys from AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY. Every file is checked against its source's checksum. A complete
    download is skipped and a partial one resumed; --force starts over.
    """
    console = rich.console.Console(stderr=True, soft_wrap=True)
    try:
        source = wanted(repo, file, revision, endpoint, region)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if in_cluster:
        if not source.source_args[0] == "--repo":
            raise click.UsageError("--in-cluster pre-warms Hub repos; for s3:// and URL sources apply an LLMServer")
        job = prewarm.create(cluster.Cluster(target), repo, file, revision, force, claim, token_secret)
        console.print(f"[green]created[/] Job {job['metadata']['namespace']}/{job['metadata']['name']} "
                      f"(follow it with: kubectl logs -f job/{job['metadata']['name']})", highlight=False)
        return
    if claim or token_secret:
        raise click.UsageError("--claim and --token-secret only apply with --in-cluster (locally: env HF_TOKEN)")
    paths = settings.LocalSettings(**({"cache_dir": cache_dir} if cache_dir else {}))
    path = download_local(source, force, paths.cache_dir, console)
    console.print(f"[green]downloaded[/] {repo.split('#')[0]} → {path}", highlight=False)
    click.echo(str(path))  # the contract: the last line of stdout is the path
