"""Operator settings come from LLMSERVER_OPERATOR_* env; bad values are refused by name."""

from __future__ import annotations

import llmserver_api
import pydantic
import pytest
from llmserver_operator import settings as settings_mod

pytestmark = pytest.mark.timeout(30)


def test_env_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_NAMESPACES", "team-a, team-b,")
    monkeypatch.setenv("LLMSERVER_OPERATOR_GPU_RESOURCE_NAME", "amd.com/gpu")
    monkeypatch.setenv("LLMSERVER_OPERATOR_RUNTIME_IMAGES",
                       '{"cpu": {"image": "registry.local/rt:2.0", "engines": ["llama-cpp"]}}')
    monkeypatch.setenv("LLMSERVER_OPERATOR_DOWNLOAD_IMAGE", "registry.local/op:2.0")
    monkeypatch.setenv("LLMSERVER_OPERATOR_CACHE_ACCESS_MODE", "ReadWriteMany")
    settings = settings_mod.Settings()
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.gpu_resource_name == "amd.com/gpu"
    assert list(settings.runtime_images) == ["cpu"]
    assert settings.runtime_images["cpu"].image == "registry.local/rt:2.0"
    assert settings.runtime_images["cpu"].engines == (llmserver_api.Backend.LLAMA_CPP,)
    assert settings.download_image == "registry.local/op:2.0"
    assert settings.cache_access_mode == "ReadWriteMany"
    assert settings_mod.Settings(namespaces=[]).namespaces == []


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_OPERATOR_GPU_RESOURCE_NAME", "not a resource")
    with pytest.raises(pydantic.ValidationError, match="gpu_resource_name"):
        settings_mod.Settings()
