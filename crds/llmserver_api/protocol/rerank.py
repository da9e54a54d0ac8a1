"""`/v1/rerank` models, in the shape vLLM, llama.cpp's server, Jina and Cohere share."""

from __future__ import annotations

import pydantic

from llmserver_api.protocol import common


class RerankDocument(pydantic.BaseModel):
    """A document given as an object."""

    model_config = common.REQUEST_CONFIG

    text: str = pydantic.Field(description="Document text.")


class RerankRequest(pydantic.BaseModel):
    """Score documents against a query."""

    model_config = common.REQUEST_CONFIG

    model: str = pydantic.Field(description="Served model name.")
    query: str = pydantic.Field(description="The query.")
    documents: list[str | RerankDocument] = pydantic.Field(min_length=1, description="Documents to rank.")
    top_n: int | None = pydantic.Field(default=None, ge=1, description="Return only the best top_n.")
    return_documents: bool = pydantic.Field(default=True, description="Echo each document's text.")

    def texts(self) -> list[str]:
        """Document texts in request order."""
        return [d if isinstance(d, str) else d.text for d in self.documents]


class RerankResult(pydantic.BaseModel):
    """One ranked document."""

    index: int = pydantic.Field(description="Position of the document in the request.")
    relevance_score: float = pydantic.Field(description="Higher is more relevant.")
    document: RerankDocument | None = pydantic.Field(default=None, description="Echoed text, if asked.")


class RerankUsage(pydantic.BaseModel):
    """Tokens the model read."""

    prompt_tokens: int = pydantic.Field(description="Tokens scored.")
    total_tokens: int = pydantic.Field(description="Equals prompt_tokens.")


class RerankResponse(pydantic.BaseModel):
    """Results sorted by relevance, best first."""

    id: str = pydantic.Field(description="Response id (rerank-...).")
    model: str = pydantic.Field(description="Served model name.")
    results: list[RerankResult] = pydantic.Field(description="Best first.")
    usage: RerankUsage = pydantic.Field(description="Token usage.")
