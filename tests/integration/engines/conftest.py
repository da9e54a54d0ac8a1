"""Tiny models for the engine tests, generated once per machine by `tiny-model` (testkit.models)."""

from __future__ import annotations

from typing import Any

import pytest

from testkit import engine_checks, models
from testkit.models import tiny_hf_causal  # noqa: F401  (session fixture)


@pytest.fixture(scope="session")
def tiny_hf_vlm() -> str:
    """The tiny LLaVA directory (`tiny-model --kind hf-vlm`)."""
    return models.tiny_model_path("hf-vlm")


@pytest.fixture(scope="session")
def tok(tiny_hf_causal: str) -> Any:  # noqa: F811 - the imported fixture, requested
    """The tiny Llama's tokenizer, that usage is counted with (a VLM module overrides it)."""
    return engine_checks.tokenizer(tiny_hf_causal)
