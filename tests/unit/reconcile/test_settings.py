"""Operator settings come from LLMSERVER_OPERATOR_* env; bad values are refused by name."""

from __future__ import annotations

import pydantic
import pytest
from llmserver_operator import settings as settings_mod

pytestmark = pytest.mark.timeout(30)


def test_env_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_NAMESPACES", "team-a, team-b,")
    monkeypatch.setenv("LLMSERVER_OPERATOR_GPU_RESOURCE_NAME", "amd.com/gpu")
    monkeypatch.setenv("LLMSERVER_OPERATOR_RUNTIME_IMAGE", "registry.local/rt")
    monkeypatch.setenv("LLMSERVER_OPERATOR_RUNTIME_TAG", "2.0")
    monkeypatch.setenv("LLMSERVER_OPERATOR_CACHE_ACCESS_MODE", "ReadWriteMany")
    settings = settings_mod.Settings()
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.gpu_resource_name == "amd.com/gpu"
    assert settings.image == "registry.local/rt:2.0"
    assert settings.cache_access_mode == "ReadWriteMany"
    assert settings_mod.Settings(namespaces=[]).namespaces == []


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_GPU_RESOURCE_NAME", "not a resource")
    with pytest.raises(pydantic.ValidationError, match="gpu_resource_name"):
        settings_mod.Settings()
