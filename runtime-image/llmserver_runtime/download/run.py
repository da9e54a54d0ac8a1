"""One download from start to finish: skip if complete, resolve, check space, fetch with retries.

Transient failures (network, Hub 5xx/429, a truncated file) are retried with exponential backoff;
huggingface-hub resumes partial bodies itself and skips files already present, so a retry only
transfers what is missing. Everything else fails at once with a DownloadError naming the cause.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable

from llmserver_runtime.download import checksum, direct, errors, fetch, progress


@dataclasses.dataclass(frozen=True)
class Retry:
    """Attempts and backoff (seconds, doubled after each failure, capped)."""

    attempts: int = 5
    delay: float = 2.0
    max_delay: float = 60.0


def run(
    request: fetch.Request,
    *,
    emit: Callable[[str], None],
    report: Callable[[progress.Snapshot], None] | None = None,
    retry: Retry = Retry(),
    interval: float = 1.0,
    report_interval: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> pathlib.Path:
    """Downloads `request`; returns the path the runtime should load. Raises DownloadError."""
    done = fetch.completed_plan(request)
    if done is not None:
        emit(f"already complete: {request.repo}@{request.revision} (commit {done.commit}) in {request.target}")
        final = progress.Snapshot(
            fetch.present_bytes(request, done), done.total_bytes, len(done.files), len(done.files), "complete"
        )
        progress.Monitor(lambda: final, emit, report).tick(final=True, snapshot=final)
        return request.served_path

    return _with_retries(
        lambda: _attempt(request, emit, report, interval, report_interval),
        lambda exc: errors.classify(exc, repo=request.repo, revision=request.revision, file=request.file,
                                    token=request.token),
        retry, emit, sleep,
    )


def _with_retries(
    attempt_once: Callable[[], pathlib.Path],
    classify: Callable[[Exception], errors.DownloadError],
    retry: Retry,
    emit: Callable[[str], None],
    sleep: Callable[[float], None],
) -> pathlib.Path:
    """Runs `attempt_once` until it succeeds, retrying transient failures with capped exponential
    backoff; the last failure (or the first permanent one) is raised as a DownloadError."""
    delay = retry.delay
    for attempt in range(1, retry.attempts + 1):
        try:
            return attempt_once()
        except Exception as exc:  # noqa: BLE001 - classified below
            failure = classify(exc)
            if not failure.transient or attempt == retry.attempts:
                if failure.transient:
                    failure = errors.DownloadError(
                        f"{failure.message}; gave up after {retry.attempts} attempts", transient=True
                    )
                raise failure from None  # the library's exception (and its request headers) stays out
            emit(f"attempt {attempt}/{retry.attempts} failed: {failure.message}; retrying in {delay:.0f}s")
            sleep(delay)
            delay = min(delay * 2, retry.max_delay)
    raise AssertionError("unreachable")


def _attempt(
    request: fetch.Request,
    emit: Callable[[str], None],
    report: Callable[[progress.Snapshot], None] | None,
    interval: float,
    report_interval: float,
) -> pathlib.Path:
    plan = fetch.resolve(request)
    files = f"{len(plan.files)} file{'s' if len(plan.files) != 1 else ''}"
    emit(f"downloading {request.repo}@{request.revision} (commit {plan.commit}): {files} into {request.target}")
    freed = fetch.remove_stale_partials(request)
    if freed:
        emit(f"removed {freed} bytes of partial files left by an interrupted run")
    fetch.check_disk_space(request, plan)
    monitor = progress.Monitor(
        lambda: progress.measure(request, plan, "downloading"), emit, report,
        interval=interval, report_interval=report_interval,
    )  # fmt: skip
    with monitor:
        path = fetch.download(request, plan)
    digests = _verify_hub_files(request, plan)
    fetch.mark_complete(request, plan, digests)
    monitor.tick(final=True, snapshot=progress.measure(request, plan, "complete"))
    return path


def _verify_hub_files(request: fetch.Request, plan: fetch.Plan) -> dict[str, str]:
    """Checks every file against the digest the Hub declared (a mismatch deletes it and fails);
    files the Hub declared nothing for are recorded by their SHA-256."""
    digests: dict[str, str] = {}
    for name in plan.files:
        expected = plan.digests.get(name)
        path = request.target / name
        found = checksum.verify(path, name, expected) if expected else checksum.compute(path, "sha256")
        digests[name] = str(found)
    return digests


def run_direct(
    source: direct.DirectSource,
    *,
    emit: Callable[[str], None],
    report: Callable[[progress.Snapshot], None] | None = None,
    retry: Retry = Retry(),
    interval: float = 1.0,
    report_interval: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> pathlib.Path:
    """Downloads an S3 or URL source the same way: skip if complete, retry transient failures with
    backoff (each attempt resumes the part files), verify, mark. Raises DownloadError."""
    done = direct.completed(source)
    if done is not None:
        emit(f"already complete: {source.label} in {source.target}")
        files = done.get("files") or {}
        total = sum(size or 0 for size in files.values())
        final = progress.Snapshot(total, total, len(files), len(files), "complete")
        progress.Monitor(lambda: final, emit, report).tick(final=True, snapshot=final)
        return source.served_path
    return _with_retries(
        lambda: _attempt_direct(source, emit, report, interval, report_interval), source.classify, retry, emit, sleep
    )


def _attempt_direct(
    source: direct.DirectSource,
    emit: Callable[[str], None],
    report: Callable[[progress.Snapshot], None] | None,
    interval: float,
    report_interval: float,
) -> pathlib.Path:
    plan = source.resolve()
    files = f"{len(plan.files)} file{'s' if len(plan.files) != 1 else ''}"
    emit(f"downloading {source.label}: {files} into {source.target}")
    direct.check_disk_space(source, plan)
    monitor = progress.Monitor(
        lambda: direct.measure(source, plan, "downloading"), emit, report,
        interval=interval, report_interval=report_interval,
    )  # fmt: skip
    with monitor:
        digests = direct.download(source, plan)
    direct.mark_complete(source, plan, digests)
    monitor.tick(final=True, snapshot=direct.measure(source, plan, "complete"))
    return source.served_path
