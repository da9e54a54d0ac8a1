"""Fields OpenAI's published document allows that fuzzing found refused: `top_p: 0`, the prompt-cache
options (output-neutral, accepted) and `moderation` (changes what is returned: refused by name)."""

from __future__ import annotations

import pytest
from llmserver_api.protocol import chat, completions

BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("model", [chat.ChatCompletionRequest, completions.CompletionRequest])
def test_top_p_zero_means_greedy(model: type) -> None:
    body = dict(BASE) if model is chat.ChatCompletionRequest else {"model": "m", "prompt": "hi"}
    request = model.model_validate({**body, "top_p": 0, "temperature": 0.9})
    assert request.top_p is None and request.temperature == 0.0
    assert model.model_validate({**body, "top_p": 0.5}).top_p == 0.5
    with pytest.raises(ValueError):
        model.model_validate({**body, "top_p": -0.1})


def test_prompt_cache_fields_are_accepted_and_change_nothing() -> None:
    request = chat.ChatCompletionRequest.model_validate(
        {**BASE, "prompt_cache_options": {"ttl": "1h"}, "prompt_cache_retention": "24h"})
    assert request.generation_options() == {}
    assert not request.model_extra


def test_moderation_is_a_generation_option_no_engine_declares() -> None:
    request = chat.ChatCompletionRequest.model_validate({**BASE, "moderation": {"model": "omni-moderation-latest"}})
    assert request.generation_options() == {"moderation": {"model": "omni-moderation-latest"}}
    assert chat.ChatCompletionRequest.model_validate({**BASE, "moderation": None}).generation_options() == {}
