"""`llmserver-runtime download`: the model download Job's entrypoint (docs/contracts.md).

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

from llmserver_runtime.download import errors, fetch, report, run

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
@click.option("--repo", required=True, help="Hugging Face repository, OWNER/NAME.")
@click.option("--file", "file_", default=None, help="Download only this file of the repository.")
@click.option("--revision", default="main", show_default=True, help="Branch, tag or commit.")
@click.option(
    "--cache-dir", required=True, type=click.Path(file_okay=False, path_type=pathlib.Path),
    help="Model cache root; the repo lands in llmserver_api.paths.huggingface_dir(repo, revision) under it.",
)  # fmt: skip
@click.option("--report-to", default=None, help="NAMESPACE/NAME of the LLMServer whose status.download to patch.")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(1, 100), help="Attempts for transient failures.")
@click.option("--retry-delay", default=2.0, show_default=True, type=click.FloatRange(0, 600), help="First backoff, seconds (doubles).")
@click.option("--progress-interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 600), hidden=True)
@click.option("--report-interval", default=5.0, show_default=True, type=click.FloatRange(0, 3600), hidden=True)
@click.option("--termination-log", default=TERMINATION_LOG, show_default=True, hidden=True)
def command(
    repo: str,
    file_: str | None,
    revision: str,
    cache_dir: pathlib.Path,
    report_to: str | None,
    retries: int,
    retry_delay: float,
    progress_interval: float,
    report_interval: float,
    termination_log: str,
) -> None:
    """Download a Hugging Face repo (or one file of it) into the model cache; token from env HF_TOKEN."""
    token = (os.environ.get("HF_TOKEN") or "").strip() or None
    _setup_logging(token)
    if "/" not in repo.strip("/"):
        raise click.BadParameter("must be OWNER/NAME", param_hint="--repo")
    reporter: report.StatusReporter | None = None
    if report_to:
        try:
            namespace, name = report.parse_target(report_to)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--report-to") from None
        try:
            reporter = report.StatusReporter(namespace, name)
        except Exception as exc:  # noqa: BLE001 - reporting is optional, the download is not
            logging.getLogger(__name__).warning("progress will not be reported to %s: %s", report_to, exc)
    request = fetch.Request(repo=repo, revision=revision, file=file_, cache_dir=cache_dir, token=token)
    try:
        path = run.run(
            request, emit=_emit, report=reporter, retry=run.Retry(attempts=retries, delay=retry_delay),
            interval=progress_interval, report_interval=report_interval,
        )  # fmt: skip
    except errors.DownloadError as failure:
        line = errors.redact(f"download failed: {failure.message}", token)
        click.echo(line, err=True)
        _write_termination_log(termination_log, line)
        if reporter is not None:
            reporter.patch({"status": {"download": {"message": line}}})
        sys.exit(1)
    _emit(str(path.resolve()))
