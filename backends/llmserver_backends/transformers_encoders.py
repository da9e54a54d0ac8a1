"""Embeddings and rerank on transformers models: pooling as sentence-transformers does it.

Mean pooling over the attention mask then L2 normalisation reproduces sentence-transformers'
output for models such as all-MiniLM-L6-v2 without depending on that library at serve time;
cross-encoder scores are the sigmoid of the single relevance logit (CrossEncoder's default).
"""

from __future__ import annotations

from typing import Any

from llmserver_backends import base

_BATCH = 32


def pool(hidden: Any, mask: Any, mode: str) -> Any:
    """One vector per row of `hidden` [batch, seq, dim] under `mask` [batch, seq]."""
    import torch

    mask_f = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(mask_f == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    if mode == "lasttoken":
        last = mask.sum(dim=1) - 1  # right padding
        return hidden[torch.arange(hidden.shape[0]), last]
    return (hidden * mask_f).sum(dim=1) / mask_f.sum(dim=1).clamp(min=1e-9)


def embed(
    model: Any, tokenizer: Any, texts: list[str], *, mode: str, max_length: int | None, causal: bool
) -> base.Embeddings:
    """Pooled, L2-normalised vectors; an input longer than `max_length` is a 400, never cut."""
    import torch

    counts = [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]
    if max_length is not None:
        for index, count in enumerate(counts):
            if count > max_length:
                raise base.ContextLengthExceeded(
                    f"Input {index} has {count} tokens; this model embeds at most {max_length} tokens."
                )
    if tokenizer.pad_token is None:  # causal tokenizers often lack one; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    vectors: list[list[float]] = []
    with torch.inference_mode():
        for start in range(0, len(texts), _BATCH):
            batch = tokenizer(texts[start : start + _BATCH], padding=True, return_tensors="pt").to(model.device)
            if causal:
                hidden = model(**batch, output_hidden_states=True).hidden_states[-1]
            else:
                hidden = model(**batch).last_hidden_state
            pooled = pool(hidden.float(), batch["attention_mask"], mode)
            vectors.extend(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().tolist())
    return base.Embeddings(vectors=vectors, prompt_tokens=sum(counts))


def rerank(model: Any, tokenizer: Any, query: str, documents: list[str], max_length: int | None) -> base.RerankScores:
    """Cross-encoder relevance of each document to `query`, in [0, 1]; long documents are truncated
    to the model's window (as CrossEncoder does), the query never."""
    import torch

    if max_length is not None:
        # Only documents are truncated: a query that leaves no room for one is the client's error
        # (the tokenizer would raise "Truncation error" deep inside, a 500).
        n_query = len(tokenizer(query, add_special_tokens=False)["input_ids"])
        most = max_length - tokenizer.num_special_tokens_to_add(pair=True) - 1
        if n_query > most:
            raise base.ContextLengthExceeded(
                f"The query has {n_query} tokens; this model reads at most {most} query tokens."
            )
    scores: list[float] = []
    tokens = 0
    with torch.inference_mode():
        for start in range(0, len(documents), _BATCH):
            chunk = documents[start : start + _BATCH]
            batch = tokenizer(
                [query] * len(chunk), chunk, padding=True, truncation="only_second",
                max_length=max_length, return_tensors="pt",
            ).to(model.device)  # fmt: skip
            tokens += int(batch["attention_mask"].sum())
            logits = model(**batch).logits.float()
            if logits.shape[-1] == 1:
                batch_scores = torch.sigmoid(logits[:, 0])
            else:  # two-way classifiers: probability of the "relevant" class
                batch_scores = torch.softmax(logits, dim=-1)[:, -1]
            scores.extend(batch_scores.cpu().tolist())
    return base.RerankScores(scores=scores, prompt_tokens=tokens)
