"""`serve --backend transformers` as a real process, driven with the official openai SDK: chat
(plain and streamed, with usage), stop strings, seeded completions, rerank on the tiny
cross-encoder, minilm embeddings against sentence-transformers, and 4-bit / 8-bit loads."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import transformers

from testkit import models, runtime_server

pytestmark = pytest.mark.timeout(600)

MESSAGES = [{"role": "user", "content": "Hello, how are you?"}]


SERVERS = {  # served name -> (model kind, extra serve flags)
    "tiny": ("hf-causal", ()),
    "tiny-4bit": ("hf-causal", ("--load-in-4bit",)),
    "tiny-8bit": ("hf-causal", ("--load-in-8bit",)),
    "reranker": ("hf-rerank", ()),
    "minilm": ("minilm", ()),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, runtime_server.RuntimeServer]]:
    """Every server of this module, started at once: most of a start is importing torch and
    transformers, which overlaps across processes."""
    tmp = tmp_path_factory.mktemp("serve")
    environment = runtime_server.env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    started: dict[str, runtime_server.RuntimeServer] = {}
    try:
        for name, (kind, flags) in SERVERS.items():
            model = models.minilm_path() if kind == "minilm" else models.tiny_model_path(kind)
            started[name] = runtime_server.launch(tmp, "transformers", model, name, *flags, environment=environment)
        for server in started.values():
            server.wait_ready(600)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def causal(servers: dict[str, runtime_server.RuntimeServer]) -> runtime_server.RuntimeServer:
    return servers["tiny"]


@pytest.fixture(scope="module")
def tokenizer() -> transformers.PreTrainedTokenizerBase:
    return transformers.AutoTokenizer.from_pretrained(models.tiny_model_path("hf-causal"))


def test_chat_and_stream_agree_and_report_real_usage(causal, tokenizer) -> None:
    client = causal.client()
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=16, temperature=0)
    rendered = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert reply.usage.prompt_tokens == len(tokenizer(rendered, add_special_tokens=False).input_ids)
    assert 0 < reply.usage.completion_tokens <= 16
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    chunks = list(client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == reply.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert chunks[-1].usage is not None and chunks[-1].usage.model_dump() == reply.usage.model_dump()


def test_stop_string_cuts_the_reply(causal) -> None:
    client = causal.client()
    full = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=24, temperature=0)
    text = full.choices[0].message.content
    assert len(text) > 8, text
    stop = text[4:7]
    cut = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=24, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < full.usage.completion_tokens


def test_completions_with_a_seed_repeat(causal, tokenizer) -> None:
    client = causal.client()

    def sample(seed: int):
        return client.completions.create(model="tiny", prompt="The weather is", max_tokens=12, temperature=1.0, seed=seed)

    first, again, other = sample(3), sample(3), sample(4)
    assert first.choices[0].text == again.choices[0].text != other.choices[0].text
    assert first.usage.prompt_tokens == len(tokenizer("The weather is").input_ids)


def test_rerank_scores_equal_cross_encoder(servers) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers", reason="in the transformers extra")
    path = models.tiny_model_path("hf-rerank")
    query = "what is the capital of france"
    documents = ["The river flows to the sea.", "Paris is the capital of France.", "Hello!", "Two plus two is four."]
    client = servers["reranker"].client()
    assert client.models.list().data[0].model_extra["capabilities"] == ["Rerank"]
    full = client.post("/rerank", body={"model": "reranker", "query": query, "documents": documents}, cast_to=object)
    top = client.post("/rerank", body={"model": "reranker", "query": query, "documents": documents, "top_n": 2},
                      cast_to=object)  # fmt: skip
    reference = sentence_transformers.CrossEncoder(path, device="cpu").predict([(query, d) for d in documents])
    results = full["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]
    assert [r["relevance_score"] for r in results] == sorted((r["relevance_score"] for r in results), reverse=True)
    for result in results:
        assert result["relevance_score"] == pytest.approx(float(reference[result["index"]]), abs=1e-5)
        assert result["document"]["text"] == documents[result["index"]]
    assert top["results"] == results[:2]
    assert full["usage"]["prompt_tokens"] > len(documents)


def test_minilm_embeddings_through_serve_equal_sentence_transformers(servers) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers", reason="in the transformers extra")
    path = models.minilm_path()
    texts = ["A man is eating food.", "Short.", "The stock market fell sharply today, analysts said."]
    client = servers["minilm"].client()
    as_float = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    as_base64 = client.embeddings.create(model="minilm", input=texts)  # the SDK decodes base64
    reference = sentence_transformers.SentenceTransformer(path, device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(np.array([d.embedding for d in as_float.data]), reference, atol=1e-5)
    np.testing.assert_allclose(np.array([d.embedding for d in as_base64.data]), reference, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-4bit", "tiny-8bit"])
def test_quantised_loads_serve_chat(servers, name: str) -> None:
    server = servers[name]
    reply = server.client().chat.completions.create(model=name, messages=MESSAGES, max_tokens=8, temperature=0)
    streamed = list(server.client().chat.completions.create(
        model=name, messages=MESSAGES, max_tokens=8, temperature=0, stream=True,
    ))  # fmt: skip
    assert 0 < reply.usage.completion_tokens <= 8
    assert isinstance(reply.choices[0].message.content, str)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == reply.choices[0].message.content
    assert "Traceback" not in server.output()
