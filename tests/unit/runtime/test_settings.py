"""serve settings: flags over env, capability parsing, engine options."""

from __future__ import annotations

import pydantic
import pytest
import llmserver_api
from llmserver_backends import base
from llmserver_runtime.server import settings


def test_env_supplies_what_flags_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_BACKEND", "fake")
    monkeypatch.setenv("LLMSERVER_MODEL", "/m")
    monkeypatch.setenv("LLMSERVER_SERVED_MODEL_NAME", "from-env")
    monkeypatch.setenv("LLMSERVER_N_CTX", "1024")
    monkeypatch.setenv("LLMSERVER_API_KEY", "sekret")
    config = settings.ServeSettings(served_model_name="from-flag")
    assert config.served_model_name == "from-flag"
    assert config.n_ctx == 1024
    assert config.api_key is not None and config.api_key.get_secret_value() == "sekret"
    assert "sekret" not in repr(config)


def test_capabilities_parse_case_insensitively() -> None:
    assert settings.parse_capabilities("textgeneration, Embeddings") == {
        llmserver_api.Capability.TEXT_GENERATION,
        llmserver_api.Capability.EMBEDDINGS,
    }


def test_unknown_capability_is_refused_by_name() -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown capability 'Audio'"):
        settings.ServeSettings(backend="fake", model="m", served_model_name="n", capabilities="Audio")


def test_backend_config_carries_only_given_engine_options() -> None:
    config = settings.ServeSettings(
        backend="llama-cpp",
        model="/m.gguf",
        served_model_name="n",
        n_ctx=512,
        n_gpu_layers=-1,
        capabilities="TextGeneration",
        extra_args=["flash_attn=true"],
    )
    backend_config = config.backend_config()
    assert backend_config.options == {"n_ctx": 512, "n_gpu_layers": -1}
    assert backend_config.capabilities == {llmserver_api.Capability.TEXT_GENERATION}
    assert backend_config.extra_args == ("flash_attn=true",)


def test_4bit_and_8bit_are_exclusive() -> None:
    with pytest.raises(pydantic.ValidationError, match="mutually exclusive"):
        settings.ServeSettings(
            backend="transformers", model="m", served_model_name="n", load_in_4bit=True, load_in_8bit=True
        )


def test_parse_key_value_args_types_values() -> None:
    assert base.parse_key_value_args(
        ["n_threads=4", "--flash-attn=true", "rope_freq_base=1e4", "name=x", "v=none"]
    ) == {
        "n_threads": 4,
        "flash_attn": True,
        "rope_freq_base": 10000.0,
        "name": "x",
        "v": None,
    }
    with pytest.raises(ValueError, match="'oops'"):
        base.parse_key_value_args(["oops"])
