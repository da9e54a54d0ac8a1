"""A local Hugging Face Hub that serves real files the way the huggingface-hub client expects, for
tests that run the real client: `llmserver-runtime download`, `llmserver inspect` and the
operator's `backend: auto` resolution (point HF_ENDPOINT at `hub.url`). The one Hub stand-in of
the test suite.

Endpoints (as huggingface-hub 2.x calls them): `GET /api/models/{repo}[/revision/{rev}]`
(model_info/repo_info: commit sha, siblings, tags, library_name, pipeline_tag),
`GET /api/models/{repo}/tree/{rev}?recursive=...` (list_repo_tree),
`HEAD|GET /{repo}/resolve/{rev}/{file}` with `X-Repo-Commit`, `ETag`, `Content-Length`, and Range
requests answered 206 with `Content-Range`. Errors carry the Hub's `X-Error-Code` headers
(RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo; 401 "Invalid credentials" for a wrong
token).

Fault injection: `interrupt[file] = n` cuts the next n GET bodies of that file halfway (the client
sees a closed connection), `fail[file] = n` answers the next n GETs with 500, and `throttle`
(bytes/second) slows bodies so progress can be watched. Every request is recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import re
import threading
import time
import urllib.parse
from typing import Any

COMMIT = "c0ffee0123456789abcdef0123456789abcdef01"


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request as the hub received it."""

    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclasses.dataclass
class HubRepo:
    """One model repo: file name -> content (bytes, or a dict/list served as JSON) plus Hub metadata.
    `token` makes the repo private (Bearer token required); `gated` answers like a gated repo whose
    license was not accepted."""

    files: dict[str, Any]
    token: str | None = None
    revisions: tuple[str, ...] = ("main",)
    tags: list[str] = dataclasses.field(default_factory=list)
    library_name: str | None = None
    pipeline_tag: str | None = None
    gated: bool = False

    def content(self, name: str) -> bytes:
        value = self.files[name]
        return value if isinstance(value, bytes) else json.dumps(value).encode()


class HubServer:
    """Threaded HTTP server on 127.0.0.1 (a free port); use as a context manager."""

    def __init__(self, repos: dict[str, HubRepo]) -> None:
        self.repos = repos
        self.requests: list[Seen] = []
        self.interrupt: dict[str, int] = {}
        self.fail: dict[str, int] = {}
        self.throttle: float | None = None  # bytes per second for file bodies
        self.corrupt: dict[str, bytes] = {}  # name -> body served instead (headers still describe the real file)
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops answering (the port is closed: later connections are refused)."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def take(self, table: dict[str, int], name: str) -> bool:
        """Consumes one injected fault for `name` if any is left."""
        with self._lock:
            if table.get(name, 0) > 0:
                table[name] -= 1
                return True
            return False

    def gets(self, file: str) -> list[Seen]:
        """The GET requests for one file's content."""
        return [r for r in self.requests if r.method == "GET" and "/resolve/" in r.path and r.path.endswith("/" + file)]


def _oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _info(repo_id: str, repo: HubRepo) -> dict[str, Any]:
    """model_info's answer: what detection reads (siblings, tags, library) and what the client parses."""
    return {"_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "sha": COMMIT, "private": repo.token is not None, "gated": False, "disabled": False,
            "tags": repo.tags, "library_name": repo.library_name, "pipeline_tag": repo.pipeline_tag,
            "siblings": [{"rfilename": name} for name in sorted(repo.files)]}  # fmt: skip


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _send(self, status: int, payload: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(payload)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def _error(self, status: int, code: str | None, message: str, body: bool) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, body)

    def _repo(self, repo_id: str, body: bool) -> HubRepo | None:
        repo = self.hub.repos.get(repo_id)
        auth = self.headers.get("Authorization")
        if repo is None:
            self._error(401 if auth is None else 404, "RepoNotFound", "Repository not found", body)
            return None
        if repo.token is not None and auth != f"Bearer {repo.token}":
            if auth is None:
                self._error(401, "RepoNotFound", "Repository not found", body)
            else:
                self._error(401, None, "Invalid credentials in Authorization header", body)
            return None
        return repo

    def _answer(self, body: bool) -> None:
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        self.hub.requests.append(Seen(self.command, path, self.headers.get("Range"), self.headers.get("Authorization")))
        api = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+))?", path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not api and not resolve:
            self._error(404, None, "Not found", body)
            return
        repo_id, revision = (api.group(1), api.group(3) or "main") if api else (resolve.group(1), resolve.group(2))
        repo = self._repo(repo_id, body)
        if repo is None:
            return
        if repo.gated:
            self._error(403, "GatedRepo", "Access to this model is restricted: accept its conditions", body)
        elif revision not in repo.revisions and revision != COMMIT:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", body)
        elif api and api.group(2) != "tree":
            self._send(200, json.dumps(_info(repo_id, repo)).encode(), {"Content-Type": "application/json"}, body)
        elif api:
            tree = [{"type": "file", "oid": _oid(repo.content(name)), "size": len(repo.content(name)), "path": name}
                    for name in sorted(repo.files)]  # fmt: skip
            self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
        elif resolve.group(3) not in repo.files:
            self._error(404, "EntryNotFound", f"{resolve.group(3)} does not exist", body)
        else:
            self._file(resolve.group(3), repo.content(resolve.group(3)), body)

    def _file(self, name: str, content: bytes, body: bool) -> None:
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{_oid(content)}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        if body and self.hub.take(self.hub.fail, name):
            self._error(500, None, "Internal Error", body)
            return
        start = 0
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        status = 200
        if wanted:
            start = min(int(wanted.group(1)), len(content))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
        payload = self.hub.corrupt.get(name, content)[start:]
        self.send_response(status)
        for key, value in {"Content-Length": str(len(payload)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if not body:
            return
        if self.hub.take(self.hub.interrupt, name):
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the client sees the body end early
            return
        chunk = 64 * 1024
        for offset in range(0, len(payload), chunk):
            self.wfile.write(payload[offset : offset + chunk])
            if self.hub.throttle:
                time.sleep(chunk / self.hub.throttle)
