"""CRD -> `serve` argv -> the real click parser -> settings -> BackendConfig.options, for every field.

Walks every CRD config field of every engine and every flag of `llmserver_api.engine_flags`, so a
flag declared in one place only (a CRD field with no flag, a flag the CLI or the settings lack)
fails here.
"""

from __future__ import annotations

import typing
from typing import Any

import annotated_types
import click
import llmserver_api
import pytest
from llmserver_api import engine_flags, llmserver
from llmserver_operator.builders import engine_args
from llmserver_runtime.server import cli, settings

FieldInfo = Any


def _sample(field: FieldInfo) -> Any:
    """A valid value for a CRD field that differs from its default."""
    if typing.get_origin(field.annotation) is typing.Literal:
        return next(choice for choice in typing.get_args(field.annotation) if choice != field.default)
    value_type = engine_flags._value_type(field.annotation)
    if value_type is bool:
        return not field.default
    if value_type is float:
        return 0.5
    if value_type is int:
        low = max([item.ge for item in field.metadata if isinstance(item, annotated_types.Ge)] + [1])
        return low + 2
    return "x"


def _serve_options(argv: list[str]) -> dict[str, Any]:
    assert argv[0] == "serve"
    context = cli.command.make_context("serve", argv[1:])
    return cli._settings(context.params).backend_config().options


@pytest.fixture(autouse=True)
def _no_flag_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for flag in engine_flags.flags():
        monkeypatch.delenv(flag.env, raising=False)


def _cases() -> list[tuple[llmserver_api.Backend, str]]:
    return [
        (engine, name) for engine in engine_flags.ENGINES for name in engine_flags.config_class(engine).model_fields
    ]


@pytest.mark.parametrize(("engine", "crd_field"), _cases(), ids=lambda item: getattr(item, "value", item))
def test_each_crd_field_reaches_the_backend_as_its_flag(engine: llmserver_api.Backend, crd_field: str) -> None:
    block_class = engine_flags.config_class(engine)
    field = block_class.model_fields[crd_field]
    value = _sample(field)
    block = {field.alias or crd_field: value}
    spec = llmserver.LLMServerSpec.model_validate(
        {"model": "m", "backend": engine.value, "source": {"pvc": {"claimName": "c"}},
         engine_flags.config_attr(engine): block}
    )
    (flag,) = [flag for flag in engine_flags.for_engine(engine) if flag.crd_field == crd_field]
    options = _serve_options(engine_args.serve_args(spec, "/m", 8080))
    assert options == {flag.name: value}


def test_auto_passes_every_written_block_through() -> None:
    spec = llmserver.LLMServerSpec.model_validate(
        {"model": "m", "backend": "auto", "source": {"pvc": {"claimName": "c"}},
         "llamaCpp": {"nCtx": 256}, "mlxVlm": {"maxTokens": 9}}
    )
    assert _serve_options(engine_args.serve_args(spec, "/m", 8080)) == {"n_ctx": 256, "max_tokens": 9}


def test_gpus_fill_the_operator_defaults_through_the_parser() -> None:
    for engine, expected in ((llmserver_api.Backend.LLAMA_CPP, {"n_gpu_layers": -1}),
                             (llmserver_api.Backend.VLLM, {"tensor_parallel_size": 2})):
        spec = llmserver.LLMServerSpec.model_validate(
            {"model": "m", "backend": engine.value, "source": {"pvc": {"claimName": "c"}}, "resources": {"gpus": 2}}
        )
        assert _serve_options(engine_args.serve_args(spec, "/m", 8080)) == expected


def test_every_flag_is_a_serve_option_an_env_name_and_an_engine_option(monkeypatch: pytest.MonkeyPatch) -> None:
    options = {opt for param in cli.command.params for opt in param.opts}
    assert list(settings.ENGINE_OPTIONS) == [flag.name for flag in engine_flags.flags()]
    for flag in engine_flags.flags():
        assert flag.option in options, f"serve lacks {flag.option}"
        value = {int: 3, float: 0.5, str: "bfloat16", bool: True}[flag.value_type]
        monkeypatch.setenv(flag.env, str(value).lower() if flag.value_type is bool else str(value))
        config = settings.ServeSettings(backend="fake", model="m", served_model_name="n")
        assert config.engine_options() == {flag.name: value}, flag.env
        monkeypatch.delenv(flag.env)


def test_bad_flag_value_is_a_usage_error_naming_the_flag() -> None:
    context = cli.command.make_context("serve", ["--backend", "fake", "--model", "m", "--served-model-name", "n",
                                                 "--gpu-memory-utilization", "1.5"])
    with pytest.raises(click.UsageError, match="--gpu-memory-utilization"):
        cli._settings(context.params)
