"""`llmserver-runtime download`: the model download Job's entrypoint (docs/contracts.md).

Sources: a Hugging Face repo (--repo), an S3 key or prefix (--s3 s3://BUCKET/KEY or
s3://BUCKET/PREFIX/, credentials from env AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or one file by
URL (--url with its --sha256). Every file is verified against the digest its source declares.
Prints progress lines and, on success, the path to serve as the last stdout line. On failure it
prints one `download failed: ...` line to stderr, writes it to the pod's termination log (which
the operator shows in the LLMServer's conditions) and exits 1. The token comes only from env
HF_TOKEN and is scrubbed from everything this process logs.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys

import click

from llmserver_runtime.download import direct, errors, fetch, report, run, s3, url

TERMINATION_LOG = "/dev/termination-log"


class _Redact(logging.Filter):
    """Scrubs the token from every log record (huggingface-hub logs URLs and error texts)."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = errors.redact(record.getMessage(), self._token)
        record.args = None
        return True


def _setup_logging(token: str | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redact(token))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    import huggingface_hub.utils

    huggingface_hub.utils.disable_progress_bars()  # our own progress lines replace the bars
    library_logger = logging.getLogger("huggingface_hub")
    library_logger.handlers.clear()  # its own stderr handler would bypass the redaction
    library_logger.propagate = True


def _emit(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


def _write_termination_log(path: str, line: str) -> None:
    if path and pathlib.Path(path).exists():
        try:
            pathlib.Path(path).write_text(line + "\n")
        except OSError:
            pass


@click.command(name="download")
@click.option("--repo", default=None, help="Hugging Face repository, OWNER/NAME.")
@click.option("--s3", "s3_uri", default=None, help="s3://BUCKET/KEY (one object) or s3://BUCKET/PREFIX/ (every object under it).")
@click.option("--s3-endpoint", default=None, help="Endpoint URL of an S3-compatible store (default: AWS).")
@click.option("--s3-region", default=None, help="Region of the bucket.")
@click.option("--url", "url_", default=None, help="http(s) URL of one file (needs --sha256).")
@click.option("--sha256", default=None, help="--url: the file's SHA-256 (64 hex digits).")
@click.option("--file", "file_", default=None, help="Download only this file of the repository.")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit.")
@click.option(
    "--cache-dir", required=True, type=click.Path(file_okay=False, path_type=pathlib.Path),
    help="Model cache root; the repo lands in llmserver_api.paths.huggingface_dir(repo, revision) under it.",
)  # fmt: skip
@click.option("--report-to", default=None, help="NAMESPACE/NAME of the LLMServer whose status.download to patch.")
@click.option("--report-adapter", default=None,
              help="With --report-to: report into status.adapters[NAME].download (an adapter's download).")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(1, 100), help="Attempts for transient failures.")
@click.option("--retry-delay", default=2.0, show_default=True, type=click.FloatRange(0, 600), help="First backoff, seconds (doubles).")
@click.option("--progress-interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 600), hidden=True)
@click.option("--report-interval", default=5.0, show_default=True, type=click.FloatRange(0, 3600), hidden=True)
@click.option("--termination-log", default=TERMINATION_LOG, show_default=True, hidden=True)
def command(
    repo: str | None,
    s3_uri: str | None,
    s3_endpoint: str | None,
    s3_region: str | None,
    url_: str | None,
    sha256: str | None,
    file_: str | None,
    revision: str,
    cache_dir: pathlib.Path,
    report_to: str | None,
    report_adapter: str | None,
    retries: int,
    retry_delay: float,
    progress_interval: float,
    report_interval: float,
    termination_log: str,
) -> None:
    """Download a Hugging Face repo (or one file of it), an S3 key or prefix, or one URL into the
    model cache; tokens and keys only from env (HF_TOKEN, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."""
    token = (os.environ.get("HF_TOKEN") or "").strip() or None
    _setup_logging(token)
    if sum(value is not None for value in (repo, s3_uri, url_)) != 1:
        raise click.UsageError("give exactly one of --repo, --s3 and --url")
    source = _direct_source(s3_uri, s3_endpoint, s3_region, url_, sha256, cache_dir)
    if repo is not None and "/" not in repo.strip("/"):
        raise click.BadParameter("must be OWNER/NAME", param_hint="--repo")
    reporter: report.StatusReporter | None = None
    if report_to:
        try:
            namespace, name = report.parse_target(report_to)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--report-to") from None
        try:
            reporter = report.StatusReporter(namespace, name, adapter=report_adapter)
        except Exception as exc:  # noqa: BLE001 - reporting is optional, the download is not
            logging.getLogger(__name__).warning("progress will not be reported to %s: %s", report_to, exc)
    retry = run.Retry(attempts=retries, delay=retry_delay)
    try:
        if source is not None:
            path = run.run_direct(source, emit=_emit, report=reporter, retry=retry, interval=progress_interval,
                                  report_interval=report_interval)  # fmt: skip
        else:
            assert repo is not None
            request = fetch.Request(repo=repo, revision=revision, file=file_, cache_dir=cache_dir, token=token)
            path = run.run(request, emit=_emit, report=reporter, retry=retry, interval=progress_interval,
                           report_interval=report_interval)  # fmt: skip
    except errors.DownloadError as failure:
        line = errors.redact(f"download failed: {failure.message}", token)
        click.echo(line, err=True)
        _write_termination_log(termination_log, line)
        if reporter is not None:
            reporter.patch({"status": {"download": {"message": line}}})
        sys.exit(1)
    _emit(str(path.resolve()))


def _direct_source(
    s3_uri: str | None, endpoint: str | None, region: str | None, url_: str | None, sha256: str | None,
    cache_dir: pathlib.Path,
) -> direct.DirectSource | None:
    """The S3 or URL source the flags name; None for a Hub repo. Bad values are usage errors."""
    try:
        if s3_uri is not None:
            bucket, path, is_prefix = s3.parse_uri(s3_uri)
            return s3.S3Source(bucket, path, is_prefix, cache_dir, endpoint=endpoint, region=region)
        if url_ is not None:
            plain, declared = url.split_fragment(url_)
            if not (sha256 or declared):
                raise click.UsageError("--url needs --sha256 (or a #sha256=HEX fragment): every file is verified")
            return url.UrlSource(plain, sha256 or declared or "", cache_dir)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return None
