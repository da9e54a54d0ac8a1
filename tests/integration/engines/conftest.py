"""Tiny models for the engine tests, generated once per machine by `tiny-model` (testkit.models)."""

from __future__ import annotations

import pytest

from testkit import models
from testkit.models import tiny_hf_causal  # noqa: F401  (session fixture)


@pytest.fixture(scope="session")
def tiny_hf_vlm() -> str:
    """The tiny LLaVA directory (`tiny-model --kind hf-vlm`)."""
    return models.tiny_model_path("hf-vlm")
