"""http(s) image_url parts: fetched only when allowed, within the size limit, images only."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import openai
import pytest
from testkit import runtime_server

pytestmark = pytest.mark.timeout(60)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
FILES = {"/cat.png": PNG, "/big.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000, "/text.txt": b"hello, not an image"}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = FILES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png" if self.path.endswith(".png") else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def vision(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    environment = runtime_server.env(LLMSERVER_MAX_IMAGE_BYTES="1000", LLMSERVER_REMOTE_IMAGE_TIMEOUT="5")
    with runtime_server.start(
        tmp_path_factory.mktemp("vision"), "fake", "unused", "tiny", "--allow-remote-images", environment=environment
    ) as server:
        yield server


def _ask(server: runtime_server.RuntimeServer, url: str) -> openai.types.chat.ChatCompletion:
    content = [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}]
    return server.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": content}], max_tokens=2
    )


def test_allowed_remote_image_is_fetched(vision: runtime_server.RuntimeServer, image_host: str) -> None:
    with_image = _ask(vision, image_host + "/cat.png")
    text_only = vision.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "What is it?"}], max_tokens=2
    )
    assert with_image.usage.prompt_tokens == text_only.usage.prompt_tokens + 4  # the fake's tokens per image


@pytest.mark.parametrize(
    ("path", "message"),
    [("/big.png", "larger than 1000 bytes"), ("/missing.png", "HTTP 404"), ("/text.txt", "not PNG, JPEG")],
)
def test_bad_remote_images_are_400(
    vision: runtime_server.RuntimeServer, image_host: str, path: str, message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(vision, image_host + path)
    error = caught.value.response.json()["error"]
    assert message in error["message"]
    assert error["param"] == "messages[0].content[1].image_url"
