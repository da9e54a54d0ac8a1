"""Turn whatever huggingface-hub, the network or the disk raised into one readable line.

The line ends up in the pod's termination message and the LLMServer's conditions, so it names
what the user can fix (repo, revision, file, token, disk) and never carries the token: every
message passes through `redact`, and library messages are only used for errors we don't know.
"""

from __future__ import annotations

import errno
import importlib
import re
from collections.abc import Iterator

_HF_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")


class DownloadError(Exception):
    """A failed download. `transient` failures are retried with backoff; others end the run."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


class DiskFull(DownloadError):
    """Not enough space in the cache volume."""

    def __init__(self, needed: int, free: int, where: str) -> None:
        super().__init__(
            f"disk full: {needed} more bytes are needed in {where} but only {free} are free", transient=False
        )


def redact(text: str, token: str | None) -> str:
    """`text` without the token (or anything shaped like a Hugging Face token)."""
    if token:
        text = text.replace(token, "***")
    return _HF_TOKEN_PATTERN.sub("hf_***", text)


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection/timeout/protocol errors of whichever HTTP stack this huggingface-hub uses."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name, names in (
        ("httpx2", ("ConnectError", "TimeoutException", "RemoteProtocolError", "ReadError", "NetworkError")),
        ("httpx", ("ConnectError", "TimeoutException", "RemoteProtocolError", "ReadError", "NetworkError")),
        ("requests", ("ConnectionError", "Timeout")),
    ):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found.extend(getattr(module, name) for name in names if isinstance(getattr(module, name, None), type))
    return tuple(found)


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def classify(exc: BaseException, *, repo: str, revision: str, file: str | None, token: str | None) -> DownloadError:
    """The DownloadError for `exc` (walks its cause chain)."""
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, DownloadError):
        return exc
    causes = list(chain(exc))
    network = _network_errors()
    token_hint = "the token in HF_TOKEN" if token else "a token in HF_TOKEN (spec.source.huggingFace.tokenSecretRef)"
    for error in causes:
        if isinstance(error, hf_errors.GatedRepoError):
            return DownloadError(
                f"{repo} is a gated repository: accept its conditions on the Hub with the account of {token_hint}",
                transient=False,
            )
        if isinstance(error, hf_errors.RepositoryNotFoundError):
            if token:
                message = f"repository {repo} not found, or the token in HF_TOKEN cannot read it"
            else:
                message = f"repository {repo} not found (if it is private or gated, give {token_hint})"
            return DownloadError(message, transient=False)
        if isinstance(error, hf_errors.RevisionNotFoundError):
            return DownloadError(f"revision {revision!r} not found in {repo}", transient=False)
        if isinstance(error, hf_errors.RemoteEntryNotFoundError):
            return DownloadError(f"file {file!r} not found in {repo} at revision {revision!r}", transient=False)
        if isinstance(error, hf_errors.HfHubHTTPError):
            status = _status(error)
            if status == 401:
                return DownloadError("authentication failed: the Hub rejected the token in HF_TOKEN", transient=False)
            if status == 403:
                return DownloadError(f"authentication failed: {token_hint} has no access to {repo}", transient=False)
            if status is not None and (status == 429 or status >= 500 or status == 408):
                return DownloadError(f"the Hub answered HTTP {status}", transient=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return DownloadError(f"disk full while writing the model: {error.strerror}", transient=False)
    for error in causes:
        if isinstance(error, network) or isinstance(error, hf_errors.LocalEntryNotFoundError):
            return DownloadError(f"cannot reach the Hub ({type(error).__name__})", transient=True)
        if isinstance(error, OSError) and "Consistency check failed" in str(error):
            return DownloadError("a file arrived incomplete", transient=True)
    return unexpected(exc, token)


def unexpected(exc: BaseException, token: str | None = None) -> DownloadError:
    """An error we don't know: its type and first line, never retried."""
    detail = redact(str(exc).splitlines()[0] if str(exc) else "", token)
    return DownloadError(f"unexpected error: {type(exc).__name__}: {detail}"[:500], transient=False)
