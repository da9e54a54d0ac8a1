"""OpenAI chat messages -> backend ChatMessages, with the Vision capability checked per image."""

from __future__ import annotations

import llmserver_api
from llmserver_backends import base

from llmserver_api.protocol import chat
from llmserver_runtime.server import images, state

_ROLE_ALIASES = {"developer": "system"}


async def convert(
    messages: list[chat.Message], runtime: state.Runtime, loader: images.ImageLoader
) -> list[base.ChatMessage]:
    """Text parts are joined with newlines; image parts are decoded in order."""
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
                parts.append(await loader.load(part.image_url.url, param))
            content = "\n".join(texts)
        else:
            content = message.content or ""
        role = _ROLE_ALIASES.get(message.role, message.role)
        converted.append(base.ChatMessage(role=role, content=content, images=tuple(parts), name=message.name))
    return converted
