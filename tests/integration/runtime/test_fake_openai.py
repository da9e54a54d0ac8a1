"""The OpenAI surface of `serve`, driven by the official SDK against the fake backend."""

from __future__ import annotations

import base64
import struct

import openai
import pytest
from llmserver_backends import base, fake
from testkit import runtime_server

pytestmark = pytest.mark.timeout(120)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name some places, please."}]
# Usage must equal the backend tokenizer's count of the templated prompt (the fake's: words and
# punctuation under a `<|role|>` template), computed here by the same code the server runs.
_TOKENIZER = fake.FakeBackend(base.BackendConfig(model_path="-", served_model_name="tiny"))
PROMPT_TOKENS = _TOKENIZER.count_tokens(_TOKENIZER.render_chat([base.ChatMessage(**m) for m in MESSAGES]))


def test_chat_returns_text_and_exact_usage(fake_server: runtime_server.RuntimeServer) -> None:
    reply = fake_server.client().chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6, seed=1)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == "tiny" and reply.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    assert _TOKENIZER.count_tokens(choice.message.content) == 6
    assert reply.usage.prompt_tokens == PROMPT_TOKENS
    assert reply.usage.completion_tokens == 6
    assert reply.usage.total_tokens == PROMPT_TOKENS + 6


def test_stream_matches_non_stream_and_ends_with_usage(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=9, seed=5)
    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=9, seed=5, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_stream_without_include_usage_sends_no_usage_chunk(fake_server: runtime_server.RuntimeServer) -> None:
    chunks = list(
        fake_server.client().chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=3, stream=True)
    )
    assert all(c.choices and c.usage is None for c in chunks)


def test_seed_makes_sampling_reproducible_and_n_gives_distinct_choices(
    fake_server: runtime_server.RuntimeServer,
) -> None:
    client = fake_server.client()
    a = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, seed=11, n=3, temperature=0.9)
    b = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, seed=11, n=3, temperature=0.9)
    texts = [c.message.content for c in a.choices]
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in b.choices]
    assert len(set(texts)) == 3
    assert a.usage.prompt_tokens == PROMPT_TOKENS  # the prompt counts once
    assert a.usage.completion_tokens == 24


def test_streamed_n_choices_carry_their_index(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=4, seed=2, n=2)
    texts = {0: "", 1: ""}
    for chunk in client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=4, seed=2, n=2, stream=True
    ):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]


def test_stop_string_cuts_the_text_and_the_usage(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    full = (
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, seed=9)
        .choices[0]
        .message.content
    )
    words = full.split()
    position = next(i for i in range(2, len(words)) if words[i] not in words[:i])
    stop_word = words[position]
    expected = full[: full.index(" " + stop_word)]
    reply = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=12, seed=9, stop=[" " + stop_word]
    )
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == position + 1  # tokens generated up to and including the stop
    streamed = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=12, seed=9, stop=" " + stop_word, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected


def test_completions_batch_echo_and_stream(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    reply = client.completions.create(model="tiny", prompt=["one two", "three four five"], max_tokens=3, n=2, seed=4)
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert reply.usage.prompt_tokens == _TOKENIZER.count_tokens("one two") + _TOKENIZER.count_tokens("three four five")
    assert reply.usage.completion_tokens == 12
    echoed = client.completions.create(model="tiny", prompt="one two", max_tokens=3, seed=4, echo=True)
    assert echoed.choices[0].text == "one two" + reply.choices[0].text
    streamed = client.completions.create(
        model="tiny", prompt="one two", max_tokens=3, seed=4, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reply.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_completions_default_max_tokens_is_16(fake_server: runtime_server.RuntimeServer) -> None:
    reply = fake_server.client().completions.create(model="tiny", prompt="a")
    assert reply.usage.completion_tokens == 16 and reply.choices[0].finish_reason == "length"


def test_embeddings_float_and_base64_agree(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    inputs = ["red river", "blue ocean, calm", "red river valley"]
    as_float = client.embeddings.create(model="tiny", input=inputs, encoding_format="float")
    assert [d.index for d in as_float.data] == [0, 1, 2]
    assert as_float.usage.prompt_tokens == sum(_TOKENIZER.count_tokens(text) for text in inputs)
    # The SDK asks for base64 itself when no format is given and decodes it.
    default = client.embeddings.create(model="tiny", input=inputs)
    for a, b in zip(as_float.data, default.data):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    raw = fake_server.client().embeddings.with_raw_response.create(model="tiny", input="red", encoding_format="base64")
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(as_float.data[0].embedding)}f", base64.b64decode(encoded))
    assert abs(sum(v * v for v in decoded) - 1.0) < 1e-5


def test_rerank_orders_by_relevance_and_cuts_top_n(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    body = {"model": "tiny", "query": "red river", "documents": ["blue ocean", "red river valley", "red"], "top_n": 2}
    reply = client.post("/rerank", body=body, cast_to=object)
    results = reply["results"]
    assert [r["index"] for r in results] == [1, 2]
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    assert results[0]["document"] == {"text": "red river valley"}
    assert reply["usage"]["prompt_tokens"] > 0


def test_models_lists_the_served_model(fake_server: runtime_server.RuntimeServer) -> None:
    client = fake_server.client()
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("other")
    assert caught.value.body["param"] == "model"


def test_vision_parts_from_data_urls_count_as_image_tokens(fake_server: runtime_server.RuntimeServer) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
    content = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    client = fake_server.client()
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": content}], max_tokens=2)
    text_only = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "What is it?"}], max_tokens=2
    )
    assert reply.usage.prompt_tokens == text_only.usage.prompt_tokens + 4  # image_tokens=4 in the fake


def test_health_ready_and_metrics_after_traffic(fake_server: runtime_server.RuntimeServer) -> None:
    fake_server.client().chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=5)
    assert runtime_server.get(fake_server.url + "/health")[0] == 200
    assert runtime_server.get(fake_server.url + "/ready")[0] == 200
    samples = fake_server.metrics()
    label = 'model="tiny"'
    assert samples[f'llmserver_requests_total{{endpoint="chat",{label},status="200"}}'] >= 1
    assert samples[f"llmserver_prompt_tokens_total{{{label}}}"] > 0
    assert samples[f"llmserver_completion_tokens_total{{{label}}}"] >= 5
    assert samples[f"llmserver_time_to_first_token_seconds_count{{{label}}}"] >= 1
    assert samples[f"llmserver_inter_token_latency_seconds_count{{{label}}}"] >= 4
    assert samples[f'llmserver_request_duration_seconds_count{{endpoint="chat",{label}}}'] >= 1
    assert samples[f"llmserver_queue_depth{{{label}}}"] == 0
    assert samples[f"llmserver_requests_in_flight{{{label}}}"] == 0
    assert samples[f'llmserver_model_load_seconds{{backend="fake",{label}}}'] >= 0
    assert samples[f"llmserver_model_ready{{{label}}}"] == 1
