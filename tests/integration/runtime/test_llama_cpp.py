"""The llama-cpp backend behind `serve`, on the tiny GGUF, through the official SDK.

Usage is checked against an independent tokenizer: the tiny HF model directory carries the same
byte-level BPE (tokenizer.json) and ChatML template as the GGUF, so the `tokenizers` library with
the template rendered by jinja2 must count the same prompt tokens that llama.cpp reports
(`tokenizers` rather than `transformers`: same tokenizer, without a 30 s import on a busy CI box)."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from testkit import runtime_server
from testkit.models import tiny_gguf, tiny_hf_causal  # noqa: F401 - session fixtures

pytestmark = pytest.mark.timeout(300)

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me about the model."}]
N_CTX = 512


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    with runtime_server.start(
        tmp_path_factory.mktemp("llama"),
        "llama-cpp",
        tiny_gguf,
        "tiny",
        "--capabilities",
        "TextGeneration,Embeddings",
        "--n-ctx",
        str(N_CTX),
        "--n-threads",
        "2",
        "--parallel",
        "3",
    ) as server:
        yield server


class Tokenizer:
    """The HF directory's tokenizer and chat template, without transformers."""

    def __init__(self, directory: str) -> None:
        import jinja2
        import tokenizers

        self._tokenizer = tokenizers.Tokenizer.from_file(str(pathlib.Path(directory) / "tokenizer.json"))
        template = (pathlib.Path(directory) / "chat_template.jinja").read_text()
        self._template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(template)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)

    def count_chat(self, messages: list[dict[str, str]]) -> int:
        return self.count(self._template.render(messages=messages, add_generation_prompt=True))


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_hf_causal: str) -> Tokenizer:  # noqa: F811
    return Tokenizer(tiny_hf_causal)


def test_chat_usage_equals_the_tokenizers_count(llama: runtime_server.RuntimeServer, hf_tokenizer: Tokenizer) -> None:
    reply = llama.client().chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, temperature=0)
    assert reply.usage.prompt_tokens == hf_tokenizer.count_chat(MESSAGES) > 0
    choice = reply.choices[0]
    assert choice.finish_reason in ("stop", "length")
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 8
    else:
        assert 0 <= reply.usage.completion_tokens < 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_completion_usage_and_exact_max_tokens(llama: runtime_server.RuntimeServer, hf_tokenizer: Tokenizer) -> None:
    prompt = "The quick brown fox jumps over the lazy dog"
    client = llama.client()
    reply = client.completions.create(model="tiny", prompt=prompt, max_tokens=24, temperature=0)
    assert reply.usage.prompt_tokens == hf_tokenizer.count(prompt)
    lengths = []
    for max_tokens in (1, 5, 24):
        r = client.completions.create(model="tiny", prompt=prompt, max_tokens=max_tokens, temperature=0)
        lengths.append((r.choices[0].finish_reason, r.usage.completion_tokens))
    assert all(count == wanted for (reason, count), wanted in zip(lengths, (1, 5, 24)) if reason == "length")
    assert lengths[0] == ("length", 1)


def test_greedy_is_deterministic_and_stream_matches(llama: runtime_server.RuntimeServer) -> None:
    client = llama.client()
    first = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=30, temperature=0)
    second = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=30, temperature=0)
    assert first.choices[0].message.content == second.choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=MESSAGES,
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == first.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == first.usage.model_dump()


def test_seeded_sampling_repeats_and_n_choices_differ(llama: runtime_server.RuntimeServer) -> None:
    client = llama.client()
    kwargs: dict[str, Any] = {"model": "tiny", "messages": MESSAGES, "max_tokens": 20, "temperature": 1.0, "seed": 42}
    a = client.chat.completions.create(**kwargs, n=2)
    b = client.chat.completions.create(**kwargs, n=2)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert a.choices[0].message.content != a.choices[1].message.content
    assert a.usage.prompt_tokens == b.usage.prompt_tokens
    if all(c.finish_reason == "length" for c in a.choices):
        assert a.usage.completion_tokens == 40  # summed over both choices
    else:
        assert 0 < a.usage.completion_tokens < 40


def test_stop_string_ends_the_choice(llama: runtime_server.RuntimeServer) -> None:
    client = llama.client()
    full = client.completions.create(model="tiny", prompt="Hello", max_tokens=40, temperature=0).choices[0].text
    if len(full) < 6:
        pytest.fail(f"greedy output too short to pick a stop string from: {full!r}")
    stop = full[3:6]
    cut = client.completions.create(model="tiny", prompt="Hello", max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert 0 < cut.usage.completion_tokens <= 40


def test_embeddings_are_pooled_normalised_and_batch_consistent(
    llama: runtime_server.RuntimeServer, hf_tokenizer: Tokenizer
) -> None:
    client = llama.client()
    texts = ["hello world", "a completely different sentence", "hello world"]
    batch = client.embeddings.create(model="tiny", input=texts, encoding_format="float")
    assert len(batch.data) == 3
    vectors = [d.embedding for d in batch.data]
    assert all(len(v) == 128 for v in vectors)  # one pooled vector per input, not one per token
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-5)
    assert vectors[0] != pytest.approx(vectors[1], abs=1e-3)
    single = client.embeddings.create(model="tiny", input="hello world", encoding_format="float").data[0].embedding
    assert single == pytest.approx(vectors[0], abs=1e-4)
    assert batch.usage.prompt_tokens == sum(hf_tokenizer.count(t) for t in texts)


def test_context_overflow_and_missing_capability(llama: runtime_server.RuntimeServer) -> None:
    client = llama.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny", prompt="hello " * 600, max_tokens=4)
    assert caught.value.response.json()["error"]["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=N_CTX)
    assert f"maximum context length is {N_CTX}" in caught.value.response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/rerank", body={"model": "tiny", "query": "q", "documents": ["d"]}, cast_to=object)
    assert "Rerank" in caught.value.response.json()["error"]["message"]
    assert client.models.list().data[0].model_extra["max_model_len"] == N_CTX


def test_token_metrics_add_up_to_reported_usage(llama: runtime_server.RuntimeServer) -> None:
    client = llama.client()
    before = llama.metrics()
    replies = [
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0),
        client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=7, temperature=0),
    ]
    after = llama.metrics()
    for kind in ("prompt", "completion"):
        key = f'llmserver_{kind}_tokens_total{{model="tiny"}}'
        assert after[key] - before.get(key, 0) == sum(getattr(r.usage, f"{kind}_tokens") for r in replies)
    assert after['llmserver_model_load_seconds{backend="llama-cpp",model="tiny"}'] > 0
    assert after['llmserver_max_concurrency{model="tiny"}'] == 3  # --parallel: the batch slots
