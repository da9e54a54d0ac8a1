"""A tiny stand-in for the Hugging Face Hub HTTP API, for tests that run the real huggingface-hub
client (point it here with HF_ENDPOINT, or `HfApi(endpoint=hub.url)`).

It answers the calls detection needs: `model_info` (GET /api/models/{repo}[/revision/{rev}]) and
file downloads (HEAD/GET /{repo}/resolve/{rev}/{file}), with the Hub's error codes for unknown
repos, gated repos and unknown revisions. A repo may require a token (`token=`); requests are
recorded so tests can check what was sent.

    with fake_hub.FakeHub({"Qwen/Qwen2.5-0.5B-Instruct": fake_hub.Repo(files={...})}) as hub:
        subprocess.run([..., "inspect", "Qwen/Qwen2.5-0.5B-Instruct"], env={"HF_ENDPOINT": hub.url})
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import re
import threading
import urllib.parse
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclasses.dataclass
class Repo:
    """One model repo: file name → content (bytes, or a dict/list written as JSON), plus hub metadata."""

    files: dict[str, Any]
    tags: list[str] = dataclasses.field(default_factory=list)
    library_name: str | None = None
    pipeline_tag: str | None = None
    token: str | None = None  # when set, requests must carry `Authorization: Bearer <token>`
    gated: bool = False  # answers like a gated repo whose license was not accepted
    revisions: tuple[str, ...] = ("main",)

    def content(self, name: str) -> bytes:
        value = self.files[name]
        return value if isinstance(value, bytes) else json.dumps(value).encode()


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving `repos` until the block exits."""

    def __init__(self, repos: dict[str, Repo]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization header)
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
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

    def _error(self, status: int, code: str, message: str, body: bool) -> None:
        payload = json.dumps({"error": message}).encode()
        self._send(status, payload, {"Content-Type": "application/json", "X-Error-Code": code,
                                     "X-Error-Message": message}, body)

    def _answer(self, body: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self.hub.requests.append((self.command, path, self.headers.get("Authorization")))
        info = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        repo_id, revision = (info.group(1), info.group(2) or "main") if info else (
            (resolve.group(1), resolve.group(2)) if resolve else (None, None))
        repo = self.hub.repos.get(repo_id or "")
        if repo is None or (repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}"):
            self._error(401, "RepoNotFound", "Repository not found", body)
        elif repo.gated:
            self._error(403, "GatedRepo", "Access to this model is restricted: accept its conditions", body)
        elif revision not in repo.revisions:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", body)
        elif info:
            payload = json.dumps({
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
                "sha": COMMIT, "private": bool(repo.token), "gated": False, "disabled": False,
                "tags": repo.tags, "library_name": repo.library_name, "pipeline_tag": repo.pipeline_tag,
                "siblings": [{"rfilename": name} for name in sorted(repo.files)],
            }).encode()
            self._send(200, payload, {"Content-Type": "application/json"}, body)
        elif resolve.group(3) in repo.files:
            content = repo.content(resolve.group(3))
            etag = '"' + hashlib.sha1(content).hexdigest() + '"'
            self._send(200, content, {"X-Repo-Commit": COMMIT, "ETag": etag,
                                      "Content-Type": "application/octet-stream"}, body)
        else:
            self._error(404, "EntryNotFound", f"{resolve.group(3)} does not exist", body)
