"""`serve --backend mlx-vlm` for real (mlx-vlm on mlx[cpu]) with the tiny LLaVA, via the openai SDK.

Images travel as base64 data URLs in OpenAI content parts. The tiny LLaVA turns one 28 px image
into four `<image>` tokens, so a request with an image has exactly three more prompt tokens than
the same template rendered with the single `<image>` placeholder: usage proves the image went
through the processor into the model.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from testkit import engine_checks, runtime_server, sampling_checks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = "tiny-vlm"
DEFAULT_MAX_TOKENS = 7
IMAGE_TOKENS = 4  # (28 / 14) ** 2 patches; the CLS position is dropped


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_hf_vlm: str) -> Iterator[runtime_server.RuntimeServer]:
    tmp: pathlib.Path = tmp_path_factory.mktemp("mlx-vlm")
    flags = ("--max-tokens", str(DEFAULT_MAX_TOKENS), "--max-kv-size", "256")
    with runtime_server.start(tmp, "mlx-vlm", tiny_hf_vlm, MODEL, *flags, ready_timeout=300) as started:
        yield started


@pytest.fixture(scope="module")
def tok(tiny_hf_vlm: str) -> Any:
    """The LLaVA's tokenizer (overrides the conftest's tiny Llama one)."""
    return engine_checks.tokenizer(tiny_hf_vlm)


def image_message(pattern: str, text: str = "What is in this picture?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": engine_checks.png_data_url(pattern)}},
    ]}]  # fmt: skip


def test_chat_with_an_image(server: runtime_server.RuntimeServer, tok: Any) -> None:
    client = server.client()
    answer = client.chat.completions.create(
        model=MODEL, messages=image_message("noise"), max_tokens=10, **engine_checks.GREEDY
    )
    assert answer.choices[0].message.content
    placeholder = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]}
    ]
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == engine_checks.chat_prompt_tokens(tok, placeholder) + IMAGE_TOKENS - 1

    streamed = client.chat.completions.create(
        model=MODEL, messages=image_message("noise"), max_tokens=10, stream=True,
        stream_options={"include_usage": True}, **engine_checks.GREEDY,
    )  # fmt: skip
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.model_dump() == answer.usage.model_dump()


def test_the_image_changes_the_answer(server: runtime_server.RuntimeServer) -> None:
    """Same text, different pixels, different greedy answers: the vision tower is in the loop."""
    client = server.client()
    answers = {
        pattern: client.chat.completions.create(
            model=MODEL, messages=image_message(pattern), max_tokens=12, **engine_checks.GREEDY
        )
        .choices[0]
        .message.content
        for pattern in ("noise", "black")
    }
    assert answers["noise"] != answers["black"], answers


class TestOpenAISurface(engine_checks.OpenAISurface):
    """Text-only requests answer as on every engine; images are accepted (vision)."""

    model = MODEL
    backend = "mlx-vlm"
    vision = True

    def metrics_chats(self) -> list[list[dict[str, Any]]]:
        return [image_message("black"), engine_checks.QUESTION]


def test_default_max_tokens_comes_from_the_server_setting(server: runtime_server.RuntimeServer) -> None:
    """A chat request without max_tokens gets `--max-tokens` (completions keep OpenAI's 16)."""
    client = server.client()
    messages = image_message("noise")
    explicit = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=DEFAULT_MAX_TOKENS, **engine_checks.GREEDY
    )
    # Meaningful only if the greedy answer is longer than the default (it is, for this tiny model).
    assert explicit.choices[0].finish_reason == "length"
    default = client.chat.completions.create(model=MODEL, messages=messages, **engine_checks.GREEDY)
    assert default.choices[0].message.content == explicit.choices[0].message.content
    assert default.choices[0].finish_reason == explicit.choices[0].finish_reason
    assert default.usage is not None and explicit.usage is not None
    assert default.usage.completion_tokens == explicit.usage.completion_tokens == DEFAULT_MAX_TOKENS


def test_bad_images_are_client_errors(server: runtime_server.RuntimeServer) -> None:
    client = server.client()
    not_an_image = "data:image/png;base64,aGVsbG8gd29ybGQ="  # "hello world"
    remote = "https://example.com/cat.png"  # remote fetching is off unless --allow-remote-images
    for url in (not_an_image, remote):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model=MODEL, max_tokens=2,
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            )  # fmt: skip
        assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]


class TestSampling(sampling_checks.SamplingChecks):
    model = MODEL
    backend = "mlx-vlm"
