"""The fake backend's sampler: a made-up but deterministic distribution per step, processed the
way the real engines do (logit_bias, repetition, frequency and presence penalties, then
temperature, top_k, min_p, top_p), so tests of the server see every sampling option act.

Pure Python on purpose: the fake has no ML libraries. Token ids are indexes into the fake's word
list; the logits come from a PRNG seeded by the prompt (the same "model" whatever the seed), the
draws from the request's seeded PRNG, so a seed still repeats a reply exactly."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from llmserver_backends import base


def needed(params: base.SamplingParams) -> bool:
    """Whether the request asks for anything beyond the fake's plain word draw."""
    return bool(
        params.logit_bias
        or params.logprobs is not None
        or params.presence_penalty
        or params.frequency_penalty
        or params.repetition_penalty != 1.0
        or params.top_k
        or params.min_p
        or params.temperature <= 0.0
    )


def _log_softmax(logits: Sequence[float]) -> list[float]:
    top = max(logits)
    total = math.log(sum(math.exp(value - top) for value in logits))
    return [value - top - total for value in logits]


def _processed(logits: list[float], params: base.SamplingParams, generated: Sequence[int]) -> list[float]:
    out = list(logits)
    for token, bias in params.logit_bias.items():
        out[token] += bias
    counts: dict[int, int] = {}
    for token in generated:
        counts[token] = counts.get(token, 0) + 1
    for token, count in counts.items():
        value = out[token]
        if params.repetition_penalty != 1.0:
            value = value / params.repetition_penalty if value > 0 else value * params.repetition_penalty
        out[token] = value - params.frequency_penalty * count - params.presence_penalty
    return out


def _draw(logits: list[float], params: base.SamplingParams, rng: random.Random) -> int:
    order = sorted(range(len(logits)), key=lambda i: -logits[i])
    draw = rng.random()  # drawn even when greedy, so the next step's logits do not depend on the mode
    if params.temperature <= 0.0:
        return order[0]
    probs = [math.exp(p) for p in _log_softmax([logits[i] / params.temperature for i in order])]
    keep = len(order) if params.top_k <= 0 else min(params.top_k, len(order))
    kept: list[int] = []
    mass = 0.0
    for rank in range(keep):
        if rank and (probs[rank] < params.min_p * probs[0] or mass >= params.top_p):
            break
        kept.append(rank)
        mass += probs[rank]
    point = draw * sum(probs[rank] for rank in kept)
    for rank in kept:
        point -= probs[rank]
        if point <= 0.0:
            return order[rank]
    return order[kept[-1]]


def choose(
    model: random.Random,
    rng: random.Random,
    words: Sequence[str],
    params: base.SamplingParams,
    generated: Sequence[int],
    first: bool,
) -> tuple[int, tuple[base.TokenLogprob, ...]]:
    """The next word's index and, when asked, its logprob entry (of the raw distribution).
    `model` makes the logits (seeded by the prompt only: the "model"), `rng` the draws (seed)."""
    logits = [model.gauss(0.0, 2.0) for _ in words]
    token = _draw(_processed(logits, params, generated), params, rng)
    if params.logprobs is None:
        return token, ()
    logprobs = _log_softmax(logits)

    def item(index: int) -> tuple[str, float, bytes]:
        text = words[index] if first else " " + words[index]
        return text, logprobs[index], text.encode()

    best = sorted(range(len(words)), key=lambda i: -logprobs[i])[: params.logprobs]
    return token, (base.TokenLogprob(*item(token), top=tuple(item(i) for i in best)),)
