"""Image content parts -> decoded `base.ImagePart`s.

`data:` URLs (base64) always work. http(s) URLs are fetched only when the server allows it
(`--allow-remote-images`, off by default: fetching arbitrary URLs from inside a cluster is an SSRF
risk), with a size cap and a timeout. Bytes must look like an image format engines decode."""

from __future__ import annotations

import base64
import binascii
import re

import aiohttp
from llmserver_backends import base

from llmserver_api.protocol import errors
from llmserver_runtime.server import settings

_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL)

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def sniff(data: bytes) -> str | None:
    """The image MIME type from the leading bytes, or None when it is not a known format."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _checked(data: bytes, config: settings.ServeSettings, param: str) -> base.ImagePart:
    if len(data) > config.max_image_bytes:
        raise errors.invalid_request(f"Image is larger than {config.max_image_bytes} bytes.", param)
    mime = sniff(data)
    if mime is None:
        raise errors.invalid_request("Image data is not PNG, JPEG, GIF, WebP or BMP.", param, "invalid_image")
    return base.ImagePart(data=data, mime_type=mime)


def decode_data_url(url: str, config: settings.ServeSettings, param: str) -> base.ImagePart:
    """A `data:image/...;base64,...` URL decoded and checked."""
    match = _DATA_URL.match(url)
    if match is None or ";base64" not in match["params"]:
        raise errors.invalid_request("image_url must be a base64 data: URL (data:image/png;base64,...).", param)
    if match["mime"] and not match["mime"].startswith("image/"):
        raise errors.invalid_request(f"Unsupported media type {match['mime']!r}; expected image/*.", param)
    payload = match["data"]
    if len(payload) > config.max_image_bytes * 4 // 3 + 4:
        raise errors.invalid_request(f"Image is larger than {config.max_image_bytes} bytes.", param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_request("image_url data is not valid base64.", param, "invalid_image") from None
    return _checked(data, config, param)


async def fetch(url: str, config: settings.ServeSettings, session: aiohttp.ClientSession, param: str) -> base.ImagePart:
    """Download an http(s) image within the size and time limits."""
    try:
        timeout = aiohttp.ClientTimeout(total=config.remote_image_timeout)
        async with session.get(url, timeout=timeout) as response:
            if response.status != 200:
                raise errors.invalid_request(f"Could not fetch image_url: HTTP {response.status}.", param)
            if response.content_length is not None and response.content_length > config.max_image_bytes:
                raise errors.invalid_request(f"Image is larger than {config.max_image_bytes} bytes.", param)
            data = await response.content.read(config.max_image_bytes + 1)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        raise errors.invalid_request(f"Could not fetch image_url: {reason}.", param) from None
    return _checked(data, config, param)


class ImageLoader:
    """Loads image parts; owns the HTTP session for remote images (closed at shutdown)."""

    def __init__(self, config: settings.ServeSettings) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def load(self, url: str, param: str) -> base.ImagePart:
        """Decode a data URL or, if allowed, fetch an http(s) URL."""
        if url.startswith("data:"):
            return decode_data_url(url, self.config, param)
        if url.startswith(("http://", "https://")):
            if not self.config.allow_remote_images:
                raise errors.invalid_request(
                    "Remote image URLs are disabled on this server; send the image as a base64 data: URL.",
                    param,
                    "remote_images_disabled",
                )
            if self._session is None:
                self._session = aiohttp.ClientSession()
            return await fetch(url, self.config, self._session, param)
        raise errors.invalid_request("image_url must be a data: or http(s) URL.", param)

    async def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None
