"""Checks of our OpenAI surface shared by the engine tests (vLLM, MLX, MLX-VLM) in tests/integration/engines.

Every engine must give the same answers to the same questions: real usage (the prompt counted
with the model's own tokenizer), streamed text equal to the non-streamed text under greedy
decoding, the usage chunk at the end of a stream, stop strings, seeds, OpenAI-shaped errors and
the one metrics schema. Each check drives a live `serve` process with the official SDK.

`OpenAISurface` runs them all as tests: an engine's test module subclasses it as
`TestOpenAISurface` (setting `model` and `backend`) next to its own module-scoped `server` and
`tok` fixtures, so every engine answers the same checks without restating them.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import numpy as np
import openai
import pytest
import transformers
from PIL import Image

from testkit import runtime_server

GREEDY: dict[str, Any] = {"temperature": 0.0}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def tokenizer(model_path: str) -> Any:
    """The served model's own tokenizer (what usage must be counted with)."""
    return transformers.AutoTokenizer.from_pretrained(model_path)


def chat_prompt_tokens(tok: Any, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of `messages` under the model's chat template."""
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tok.encode(text, add_special_tokens=False))


def png_data_url(pattern: str, size: tuple[int, int] = (40, 32)) -> str:
    """A PNG as a base64 data URL: `noise` (seeded) or a flat `black` image."""
    width, height = size
    if pattern == "noise":
        pixels = (np.random.default_rng(1).random((height, width, 3)) * 255).astype("uint8")
    else:
        pixels = np.zeros((height, width, 3), dtype="uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def check_chat_usage_and_streaming(client: openai.OpenAI, model: str, tok: Any) -> None:
    """Non-streamed and streamed greedy chat agree on text and usage; usage is the real count."""
    answer = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=12, **GREEDY)
    choice = answer.choices[0]
    assert answer.model == model
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == chat_prompt_tokens(tok, QUESTION)
    assert 1 <= answer.usage.completion_tokens <= 12
    if choice.finish_reason == "length":
        assert answer.usage.completion_tokens == 12
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens

    chunks = list(
        client.chat.completions.create(
            model=model, messages=QUESTION, max_tokens=12, stream=True, stream_options={"include_usage": True}, **GREEDY
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [choice.finish_reason]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.model_dump() == answer.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])


def check_completions(client: openai.OpenAI, model: str, tok: Any) -> None:
    """Plain completions count the prompt with the tokenizer and honour max_tokens."""
    prompt = "The quick brown fox"
    result = client.completions.create(model=model, prompt=prompt, max_tokens=9, **GREEDY)
    assert result.choices[0].text
    assert result.usage is not None
    assert result.usage.prompt_tokens == len(tok.encode(prompt))
    assert 1 <= result.usage.completion_tokens <= 9
    streamed = client.completions.create(
        model=model, prompt=prompt, max_tokens=9, stream=True, stream_options={"include_usage": True}, **GREEDY
    )
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == result.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == result.usage.completion_tokens


def check_stop_string(client: openai.OpenAI, model: str) -> None:
    """A stop string taken from the middle of the greedy answer cuts the answer right before it."""
    for prompt in ("The quick brown", "Once upon a time", "Numbers: 0 1 2"):
        full = client.completions.create(model=model, prompt=prompt, max_tokens=40, **GREEDY).choices[0].text
        # Plain ASCII from the middle (random weights also emit partial UTF-8), found mid-stream.
        start = next((i for i in range(4, len(full) - 3) if _plain(full[i : i + 3])), None)
        if start is not None:
            break
    else:
        pytest.fail(f"no greedy answer has a plain 3-character run to stop at; the last: {full!r}")
    stop = full[start : start + 3]
    cut = client.completions.create(model=model, prompt=prompt, max_tokens=40, stop=[stop], **GREEDY)
    assert cut.choices[0].text == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage is not None and cut.usage.completion_tokens < 40


def _plain(text: str) -> bool:
    return all(ch.isascii() and ch.isalnum() for ch in text)


def check_seed(client: openai.OpenAI, model: str) -> None:
    """Sampling with a seed repeats itself; other seeds give other text."""

    def sample(seed: int) -> str:
        result = client.completions.create(model=model, prompt="Hello", max_tokens=16, temperature=1.0, seed=seed)
        return result.choices[0].text

    first = sample(1234)
    assert sample(1234) == first
    assert any(sample(seed) != first for seed in (1, 2, 3))


def check_errors(client: openai.OpenAI, model: str, vision: bool) -> None:
    """Unknown model 404 (param model); an image for a text-only model 400 naming Vision."""
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=QUESTION, max_tokens=2)
    assert missing.value.body["param"] == "model"  # type: ignore[index]
    if not vision:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model=model,
                max_tokens=2,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": png_data_url("black")}},
                        ],
                    }
                ],
            )
        assert "Vision" in refused.value.body["message"]  # type: ignore[index]


def leave_stream_early(client: openai.OpenAI, model: str, max_tokens: int) -> None:
    """Opens a long greedy completion stream and leaves after three chunks (a client going away)."""
    with client.completions.create(
        model=model, prompt="The quick", max_tokens=max_tokens, stream=True, **GREEDY
    ) as stream:
        for count, _ in enumerate(stream):
            if count == 2:
                break


def check_engine_free(client: openai.OpenAI, model: str) -> None:
    """The engine answers a new request normally (nothing left running from an earlier one)."""
    again = client.completions.create(model=model, prompt="Hello", max_tokens=4, **GREEDY)
    assert again.usage is not None and again.usage.completion_tokens >= 1


def wait_for_log(server: runtime_server.RuntimeServer, needle: str, timeout: float = 60.0) -> str:
    """The first log line of `server` containing `needle`, polled for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.output().splitlines() if needle in line]
        if lines:
            return lines[0]
        if time.monotonic() > deadline:
            pytest.fail(f"no log line with {needle!r} after {timeout}s:\n{server.output()[-3000:]}")
        time.sleep(0.2)


def check_metrics(server: runtime_server.RuntimeServer, model: str, backend: str) -> None:
    """The one metrics schema, with the traffic of the checks above in it."""
    samples = server.metrics()
    assert samples[f'llmserver_requests_total{{endpoint="chat",model="{model}",status="200"}}'] >= 2
    assert samples[f'llmserver_requests_total{{endpoint="completions",model="{model}",status="200"}}'] >= 1
    assert samples[f'llmserver_prompt_tokens_total{{model="{model}"}}'] > 0
    assert samples[f'llmserver_completion_tokens_total{{model="{model}"}}'] > 0
    assert samples[f'llmserver_time_to_first_token_seconds_count{{model="{model}"}}'] >= 3
    assert samples[f'llmserver_model_ready{{model="{model}"}}'] == 1
    assert samples[f'llmserver_model_load_seconds{{backend="{backend}",model="{model}"}}'] > 0
    assert samples[f'llmserver_requests_in_flight{{model="{model}"}}'] == 0


class OpenAISurface:
    """The shared checks as tests, for a module with `server` (runtime_server.RuntimeServer) and
    `tok` (the model's tokenizer) fixtures; not collected itself (no `Test` prefix)."""

    model: str
    backend: str
    vision = False  # True: images are accepted, not refused as a missing capability

    def test_chat_usage_and_streaming(self, server: runtime_server.RuntimeServer, tok: Any) -> None:
        check_chat_usage_and_streaming(server.client(), self.model, tok)

    def test_completions(self, server: runtime_server.RuntimeServer, tok: Any) -> None:
        check_completions(server.client(), self.model, tok)

    def test_stop_string(self, server: runtime_server.RuntimeServer) -> None:
        check_stop_string(server.client(), self.model)

    def test_seed(self, server: runtime_server.RuntimeServer) -> None:
        check_seed(server.client(), self.model)

    def test_errors(self, server: runtime_server.RuntimeServer) -> None:
        check_errors(server.client(), self.model, vision=self.vision)

    def test_metrics(self, server: runtime_server.RuntimeServer) -> None:
        client = server.client()
        for messages in self.metrics_chats():
            client.chat.completions.create(model=self.model, messages=messages, max_tokens=3)
        client.completions.create(model=self.model, prompt="Hi", max_tokens=3)
        check_metrics(server, self.model, self.backend)

    def metrics_chats(self) -> list[list[dict[str, Any]]]:
        """The chat requests sent before the metrics are read (at least two)."""
        return [QUESTION, QUESTION]
