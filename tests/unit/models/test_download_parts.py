"""Pieces of the downloader that need no network: error classification, redaction, disk check,
completion marker, progress measurement and the status patch's shape."""

from __future__ import annotations

import errno
import pathlib
import shutil

import httpx2
import pytest
from huggingface_hub import errors as hf_errors

from llmserver_api import llmserver, paths
from llmserver_runtime.download import errors, fetch, progress, report

pytestmark = pytest.mark.timeout(60)


def _http_error(cls: type[hf_errors.HfHubHTTPError], status: int) -> hf_errors.HfHubHTTPError:
    request = httpx2.Request("GET", "https://hub.example/api/models/org/x")
    return cls(f"{status} Client Error", response=httpx2.Response(status, request=request))


def _classify(exc: BaseException, token: str | None = None) -> errors.DownloadError:
    return errors.classify(exc, repo="org/x", revision="v1", file="w.gguf", token=token)


@pytest.mark.parametrize(
    ("exc", "message", "transient"),
    [
        (_http_error(hf_errors.GatedRepoError, 403), "org/x is a gated repository", False),
        (_http_error(hf_errors.RepositoryNotFoundError, 401), "repository org/x not found (if it is private", False),
        (_http_error(hf_errors.RevisionNotFoundError, 404), "revision 'v1' not found in org/x", False),
        (_http_error(hf_errors.RemoteEntryNotFoundError, 404), "file 'w.gguf' not found in org/x at revision 'v1'", False),
        (_http_error(hf_errors.HfHubHTTPError, 401), "authentication failed: the Hub rejected", False),
        (_http_error(hf_errors.HfHubHTTPError, 503), "the Hub answered HTTP 503", True),
        (_http_error(hf_errors.HfHubHTTPError, 429), "the Hub answered HTTP 429", True),
        (OSError(errno.ENOSPC, "No space left on device"), "disk full while writing the model", False),
        (httpx2.ConnectError("refused"), "cannot reach the Hub (ConnectError)", True),
        (OSError("Consistency check failed: file should be of size 10 but has size 5"), "a file arrived incomplete", True),
    ],
)
def test_classify_names_the_cause(exc: BaseException, message: str, transient: bool) -> None:
    failure = _classify(exc)
    assert failure.message.startswith(message)
    assert failure.transient is transient


def test_classify_follows_the_cause_chain_and_mentions_the_token_only_by_name() -> None:
    try:
        try:
            raise httpx2.ConnectError("connection refused")
        except httpx2.ConnectError as inner:
            raise hf_errors.LocalEntryNotFoundError("cannot find the requested files in the cache") from inner
    except hf_errors.LocalEntryNotFoundError as outer:
        assert _classify(outer).transient
    with_token = _classify(_http_error(hf_errors.RepositoryNotFoundError, 404), token="hf_abcdefghijkl")
    assert with_token.message == "repository org/x not found, or the token in HF_TOKEN cannot read it"


def test_unknown_errors_are_redacted() -> None:
    token = "hf_SecretSecret123"
    failure = _classify(RuntimeError(f"boom with {token} and hf_OtherLookingToken99 inside\nsecond line"), token=token)
    assert failure.message == "unexpected error: RuntimeError: boom with *** and hf_*** inside"
    assert not failure.transient


def _request(tmp_path: pathlib.Path, file: str | None = None) -> fetch.Request:
    return fetch.Request(repo="org/x", revision="main", file=file, cache_dir=tmp_path)


def test_request_paths_follow_the_api_layout(tmp_path: pathlib.Path) -> None:
    request = _request(tmp_path, "w.gguf")
    assert request.target == tmp_path / paths.huggingface_dir("org/x", "main")
    assert request.served_path == tmp_path / paths.huggingface_model_path("org/x", "main", "w.gguf")
    assert "token" not in repr(fetch.Request("org/x", "main", None, tmp_path, token="hf_abcdefghijkl"))


def test_disk_check_refuses_what_does_not_fit(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request = _request(tmp_path)
    plan = fetch.Plan(commit="c", files={"a.bin": 600, "b.bin": 500})
    request.target.mkdir(parents=True)
    (request.target / "a.bin").write_bytes(b"x" * 600)  # already there: only b.bin counts
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=400))
    with pytest.raises(errors.DiskFull) as caught:
        fetch.check_disk_space(request, plan)
    assert caught.value.message == f"disk full: 500 more bytes are needed in {tmp_path} but only 400 are free"
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=500))
    fetch.check_disk_space(request, plan)  # fits exactly


def test_marker_means_complete_only_while_every_file_is_intact(tmp_path: pathlib.Path) -> None:
    request = _request(tmp_path)
    plan = fetch.Plan(commit="abc", files={"a.bin": 3, "sub/b.bin": 2})
    (request.target / "sub").mkdir(parents=True)
    (request.target / "a.bin").write_bytes(b"abc")
    (request.target / "sub" / "b.bin").write_bytes(b"de")
    assert fetch.completed_plan(request) is None
    fetch.mark_complete(request, plan)
    assert fetch.completed_plan(request) == plan
    assert fetch.completed_plan(fetch.Request("org/x", "v2", None, tmp_path)) is None  # other revision
    (request.target / "sub" / "b.bin").write_bytes(b"d")  # truncated
    assert fetch.completed_plan(request) is None


def test_measure_counts_complete_and_partial_files(tmp_path: pathlib.Path) -> None:
    request = _request(tmp_path)
    plan = fetch.Plan(commit="c", files={"a.bin": 4, "b.bin": 10})
    request.target.mkdir(parents=True)
    (request.target / "a.bin").write_bytes(b"abcd")
    fetch.partial_dir(request).mkdir(parents=True)
    (fetch.partial_dir(request) / "b.bin.1234abcd.incomplete").write_bytes(b"12345")
    snapshot = progress.measure(request, plan, "downloading")
    assert (snapshot.bytes_done, snapshot.bytes_total, snapshot.files_done, snapshot.files_total) == (9, 14, 1, 2)
    assert "[bytes=9/14]" in snapshot.line()
    assert fetch.remove_stale_partials(request) == 5
    assert progress.measure(request, plan, "x").bytes_done == 4


def test_status_patch_matches_the_llmserver_schema() -> None:
    snapshot = progress.Snapshot(5, 10, 1, 2, "downloading")
    download = snapshot.status_patch()["status"]["download"]  # type: ignore[index]
    parsed = llmserver.DownloadProgress.model_validate(download)
    assert (parsed.bytes_done, parsed.bytes_total, parsed.files_done, parsed.files_total) == (5, 10, 1, 2)
    assert llmserver.DownloadProgress.model_validate(download).model_dump(by_alias=True, exclude_none=True) == download


def test_monitor_prints_changes_and_throttles_reports() -> None:
    snapshots = iter([progress.Snapshot(i, 10, 0, 1, "d") for i in (1, 1, 2, 3)])
    lines: list[str] = []
    reports: list[progress.Snapshot] = []
    monitor = progress.Monitor(lambda: next(snapshots), lines.append, reports.append, report_interval=3600)
    for _ in range(3):
        monitor.tick(final=False)
    monitor.tick(final=True)
    assert len(lines) == 3  # the repeated sample is not printed twice
    assert [r.bytes_done for r in reports] == [1, 3]  # first, then only the final one within the interval


@pytest.mark.parametrize("value", ["ns", "ns/", "/name", "a/b/c"])
def test_report_target_must_be_namespace_and_name(value: str) -> None:
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        report.parse_target(value)
    assert report.parse_target("models/tiny") == ("models", "tiny")
