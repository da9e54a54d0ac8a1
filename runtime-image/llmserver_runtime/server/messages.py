"""OpenAI chat messages -> backend ChatMessages, with the Vision capability checked per image.

Two steps, so that admission bounds the costly one: `check_images` runs before the request queues
(capability, image count, the size the data URLs claim), `convert` after its slot is held (decodes
or fetches each image, and holds the request to its total image bytes)."""

from __future__ import annotations

import llmserver_api
from llmserver_backends import base, structured

from llmserver_api.protocol import chat, errors
from llmserver_runtime.server import images, limits, state

_ROLE_ALIASES = {"developer": "system"}


def _image_parts(messages: list[chat.Message]) -> list[tuple[str, chat.ImagePart]]:
    return [
        (f"messages[{i}].content[{j}].image_url", part)
        for i, message in enumerate(messages)
        if isinstance(message.content, list)
        for j, part in enumerate(message.content)
        if not isinstance(part, chat.TextPart)
    ]


def check_images(messages: list[chat.Message], runtime: state.Runtime, bounds: limits.InputLimits) -> None:
    """Refuse, before any decoding, images the model cannot see or more than one request may send."""
    parts = _image_parts(messages)
    if not parts:
        return
    runtime.require(llmserver_api.Capability.VISION, parts[0][0])
    if len(parts) > bounds.max_images:
        raise errors.invalid_request(
            f"The request has {len(parts)} images; at most {bounds.max_images} are allowed per request.",
            parts[bounds.max_images][0],
            "too_many_images",
        )
    claimed = 0
    for param, part in parts:
        url = part.image_url.url
        if url.startswith("data:"):
            claimed += (len(url) - url.find(",") - 1) * 3 // 4
            if claimed > bounds.max_request_image_bytes:
                raise _too_many_bytes(param, bounds)


def _too_many_bytes(param: str, bounds: limits.InputLimits) -> errors.APIError:
    return errors.invalid_request(
        f"The request's images exceed {bounds.max_request_image_bytes} bytes in all.", param, "images_too_large"
    )


async def convert(
    messages: list[chat.Message], runtime: state.Runtime, loader: images.ImageLoader
) -> list[base.ChatMessage]:
    """Text parts are joined with newlines; image parts are decoded in order."""
    bounds = runtime.limits
    total = 0
    converted: list[base.ChatMessage] = []
    for i, message in enumerate(messages):
        parts: list[base.ImagePart] = []
        if isinstance(message.content, list):
            texts: list[str] = []
            for j, part in enumerate(message.content):
                if isinstance(part, chat.TextPart):
                    texts.append(part.text)
                    continue
                param = f"messages[{i}].content[{j}].image_url"
                runtime.require(llmserver_api.Capability.VISION, param)
                image = await loader.load(part.image_url.url, param)
                total += len(image.data)
                if total > bounds.max_request_image_bytes:
                    raise _too_many_bytes(param, bounds)
                parts.append(image)
            content = "\n".join(texts)
        else:
            content = message.content or ""
        role = _ROLE_ALIASES.get(message.role, message.role)
        calls = tuple(
            structured.ToolCall(call.id, call.function.name, call.function.arguments) for call in message.tool_calls or ()
        )
        converted.append(
            base.ChatMessage(
                role=role, content=content, images=tuple(parts), name=message.name,
                tool_calls=calls, tool_call_id=message.tool_call_id,
            )
        )  # fmt: skip
    return converted
