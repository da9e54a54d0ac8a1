"""A plain http server on 127.0.0.1 for URL sources: serves named byte strings with `Range:
bytes=N-` support, records every request, and can cut a body short to test resuming."""

from __future__ import annotations

import dataclasses
import http.server
import re
import threading
from typing import Any


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request: method, path and its Range header."""

    method: str
    path: str
    range: str | None


class FileServer:
    """Threaded server of `files` (`/name` -> bytes); a context manager."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[Seen] = []
        self.interrupt: dict[str, int] = {}  # name -> how many bodies to cut in half
        handler = type("Handler", (_Handler,), {"owner": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="file-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def gets(self, name: str) -> list[Seen]:
        return [r for r in self.requests if r.method == "GET" and r.path == "/" + name]


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FileServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        self.owner.requests.append(Seen(self.command, self.path, self.headers.get("Range")))
        name = self.path.lstrip("/")
        content = self.owner.files.get(name)
        if content is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        self.send_response(206 if wanted else 200)
        if wanted:
            start = min(int(wanted.group(1)), len(content))
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        payload = content[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not body:
            return
        if self.owner.interrupt.get(name, 0) > 0:
            self.owner.interrupt[name] -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(payload)
