"""The litellm SDK against the gateway in front of llama.cpp on the tiny GGUF, as an application
using litellm's OpenAI-compatible provider (`openai/<model>` with `api_base`) calls it."""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported: no network fetch
import litellm  # noqa: E402

pytestmark = pytest.mark.timeout(300)

MODEL = "tiny"  # the served name the conftest gives the runtime
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def _kwargs(gateway_url: str) -> dict[str, object]:
    return {"model": f"openai/{MODEL}", "api_base": gateway_url, "api_key": "unused", "num_retries": 0, "timeout": 120}


def test_completion(gateway_url: str) -> None:
    response = litellm.completion(messages=MESSAGES, max_tokens=8, temperature=0, **_kwargs(gateway_url))
    choice = response.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert isinstance(choice.message.content, str)
    assert 0 < response.usage.completion_tokens <= 8 and response.usage.prompt_tokens > 0


def test_stream_equals_the_whole_answer(gateway_url: str) -> None:
    """Greedy decoding: the streamed pieces join to the whole answer."""
    whole = litellm.completion(messages=MESSAGES, max_tokens=8, temperature=0, **_kwargs(gateway_url))
    stream = litellm.completion(messages=MESSAGES, max_tokens=8, temperature=0, stream=True, **_kwargs(gateway_url))
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert any(chunk.choices and chunk.choices[0].finish_reason for chunk in chunks)


def test_async_stream(gateway_url: str) -> None:
    whole = litellm.completion(messages=MESSAGES, max_tokens=8, temperature=0, **_kwargs(gateway_url))

    async def collect() -> str:
        stream = await litellm.acompletion(
            messages=MESSAGES, max_tokens=8, temperature=0, stream=True, **_kwargs(gateway_url)
        )
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    assert asyncio.run(collect()) == whole.choices[0].message.content


def test_errors_keep_their_meaning(gateway_url: str) -> None:
    with pytest.raises(litellm.NotFoundError):
        litellm.completion(messages=MESSAGES, **dict(_kwargs(gateway_url), model="openai/no-such-model"))
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(messages=MESSAGES, max_tokens=0, **_kwargs(gateway_url))
