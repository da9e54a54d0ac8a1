"""Issue 17's sampling and logprobs checks, shared by every engine's serve tests (official SDK).

A module subclasses `SamplingChecks` (no `Test` prefix: not collected itself) next to its `server`
fixture. The tiny models are random, so the checks use what holds on any model: a +100 logit_bias
forces its token, top_k=1 and min_p=1 are greedy decoding, the penalties leave fewer repeated
tokens in a greedy run that repeats, and logprobs are well-formed log probabilities that agree
with greedy choices and between plain and streamed responses."""

from __future__ import annotations

import math
from typing import Any

import openai
import pytest
from llmserver_backends import registry

from testkit import runtime_server

SAMPLING = {"seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "top_k", "min_p", "logit_bias"}
LOGPROBS = {"logprobs", "top_logprobs"}
CHAT = [{"role": "user", "content": "Tell me about the model."}]


def _repeats(tokens: list[Any]) -> int:
    return len(tokens) - len(set(tokens))


class SamplingChecks:
    """Checks for a module with a `server` fixture serving `model` on `backend`."""

    model: str
    backend: str
    bias_token = (337, "model")  # the tiny tokenizer's " model" (id, text without its space)
    repeat_prompt = "Hello"  # greedy decoding of this prompt repeats tokens on the tiny model

    def test_backend_declares_sampling_and_logprobs(self) -> None:
        assert registry.backend_class(self.backend).supported_parameters >= SAMPLING | LOGPROBS

    def test_logit_bias_forces_a_token(self, server: runtime_server.RuntimeServer) -> None:
        token_id, text = self.bias_token
        reply = server.client().completions.create(
            model=self.model, prompt="Once", max_tokens=5, temperature=1.0, seed=3, logit_bias={str(token_id): 100}
        )
        assert reply.choices[0].text.split() == [text] * 5

    def test_top_k_1_and_min_p_1_are_greedy(self, server: runtime_server.RuntimeServer) -> None:
        client = server.client()
        greedy = client.chat.completions.create(model=self.model, messages=CHAT, max_tokens=12, temperature=0)
        for extra in ({"top_k": 1}, {"min_p": 1.0}):
            sampled = client.chat.completions.create(
                model=self.model, messages=CHAT, max_tokens=12, temperature=1.5, seed=5, extra_body=extra
            )
            assert sampled.choices[0].message.content == greedy.choices[0].message.content, extra

    def test_top_k_over_the_vocabulary_filters_nothing(self, server: runtime_server.RuntimeServer) -> None:
        client = server.client()
        kwargs: dict[str, Any] = {"model": self.model, "messages": CHAT, "max_tokens": 8, "temperature": 1.0, "seed": 9}
        plain = client.chat.completions.create(**kwargs)
        huge = client.chat.completions.create(**kwargs, extra_body={"top_k": 2**31 - 1})
        assert huge.choices[0].message.content == plain.choices[0].message.content

    def test_penalties_leave_fewer_repeats(self, server: runtime_server.RuntimeServer) -> None:
        client = server.client()

        def tokens(**extra: float) -> list[str]:
            reply = client.completions.create(
                model=self.model, prompt=self.repeat_prompt, max_tokens=48, temperature=0, logprobs=0,
                extra_body=extra,
            )  # fmt: skip
            logprobs = reply.choices[0].logprobs
            assert logprobs is not None and logprobs.tokens is not None
            return logprobs.tokens

        baseline = _repeats(tokens())
        assert baseline >= 2, "the greedy run must repeat for the penalties to have something to remove"
        for extra in ({"frequency_penalty": 1.0}, {"presence_penalty": 1.0}, {"repetition_penalty": 1.5}):
            assert _repeats(tokens(**extra)) < baseline, extra

    def test_chat_logprobs_plain_and_streamed(self, server: runtime_server.RuntimeServer) -> None:
        client = server.client()
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": CHAT, "max_tokens": 10, "temperature": 0, "logprobs": True,
            "top_logprobs": 3,
        }  # fmt: skip
        plain = client.chat.completions.create(**kwargs)
        content = plain.choices[0].logprobs.content  # type: ignore[union-attr]
        assert content is not None and len(content) == plain.usage.completion_tokens  # type: ignore[union-attr]
        for entry in content:
            assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
            assert entry.bytes is not None and bytes(entry.bytes).decode("utf-8", "replace") == entry.token
            values = [alternative.logprob for alternative in entry.top_logprobs]
            assert values == sorted(values, reverse=True) and sum(math.exp(v) for v in values) <= 1.0001
            assert entry.top_logprobs[0].bytes == entry.bytes  # greedy: the chosen token is the likeliest
            assert entry.logprob == pytest.approx(values[0], abs=1e-4)
        streamed = [
            item
            for chunk in client.chat.completions.create(**kwargs, stream=True)
            for choice in chunk.choices
            if choice.logprobs is not None and choice.logprobs.content
            for item in choice.logprobs.content
        ]
        assert [e.bytes for e in streamed] == [e.bytes for e in content]
        assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in content], abs=1e-4)
        no_logprobs = client.chat.completions.create(**{**kwargs, "logprobs": False, "top_logprobs": None})
        assert no_logprobs.choices[0].logprobs is None

    def test_completion_logprobs_plain_and_streamed(self, server: runtime_server.RuntimeServer) -> None:
        client = server.client()
        kwargs: dict[str, Any] = {"model": self.model, "prompt": "Once", "max_tokens": 8, "temperature": 0}
        kwargs["logprobs"] = 2
        plain = client.completions.create(**kwargs)
        logprobs = plain.choices[0].logprobs
        assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs and logprobs.top_logprobs
        assert plain.usage is not None
        assert len(logprobs.tokens) == plain.usage.completion_tokens == len(logprobs.token_logprobs)
        assert logprobs.text_offset == sorted(logprobs.text_offset or [])
        assert all(1 <= len(top) <= 2 and max(top.values()) <= 0 for top in logprobs.top_logprobs)
        streamed: list[str] = []
        for chunk in client.completions.create(**kwargs, stream=True):
            if chunk.choices and chunk.choices[0].logprobs is not None:
                streamed += chunk.choices[0].logprobs.tokens or []
        assert streamed == logprobs.tokens

    def test_bad_values_are_refused_by_name(self, server: runtime_server.RuntimeServer) -> None:
        client = server.client()
        for extra, param in (
            ({"logit_bias": {"1000000": 5}}, "logit_bias"),
            ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ):
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model=self.model, messages=CHAT, max_tokens=2, extra_body=extra)
            body = refused.value.body
            assert isinstance(body, dict) and body["param"] == param, body
