"""spec.extraArgs may not turn remote code on (only spec.trustRemoteCode may) nor set what a typed
field sets; pydantic, the CRD schema and its CEL rules refuse the same arguments, naming the field
to use instead. The owned engine flags come from llmserver_api.engine_flags, so a flag added there
is refused here without another list to keep in step."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

import llmserver_api
from llmserver_api import engine_flags, llmserver
from testkit import crd_validation


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return crd_validation.load_crds()


def _manifest(backend: str, extra_args: list[str], trust: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "m",
        "backend": backend,
        "source": {"huggingFace": {"repo": "org/model"}},
        "extraArgs": extra_args,
    }
    if trust:
        spec["trustRemoteCode"] = True
    return {"apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": "m"}, "spec": spec}


def _refusals(crds: dict[str, dict[str, Any]], manifest: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(pydantic's error text or None, the API server's messages)."""
    try:
        llmserver.LLMServer.model_validate(manifest)
        refused = None
    except pydantic.ValidationError as error:
        refused = str(error)
    problems = crd_validation.api_server_problems(crds, manifest)
    assert {problem.path for problem in problems} <= {"spec.extraArgs"}
    return refused, [problem.message for problem in problems]


@pytest.mark.parametrize(
    "arg",
    [
        "--trust-remote-code", "--trust_remote_code", "--trust-remote-code=true", "trust_remote_code=true",
        "trust-remote-code=True", "--trust-rem", "--tr", '--hf-overrides={"trust_remote_code": true}', "--config",
    ],
)  # fmt: skip
@pytest.mark.parametrize("backend", ["vllm", "transformers", "mlx", "auto"])
def test_remote_code_needs_trust_remote_code(crds: dict[str, dict[str, Any]], backend: str, arg: str) -> None:
    refused, messages = _refusals(crds, _manifest(backend, ["--seed=1", arg]))
    assert refused is not None and "spec.trustRemoteCode" in refused
    assert messages and all("spec.trustRemoteCode" in message for message in messages)
    assert _refusals(crds, _manifest(backend, ["--seed=1", arg], trust=True)) == (None, [])


@pytest.mark.parametrize("arg", ["--no-trust-remote-code", "--trusted=1", "--configure", "--enable-prefix-caching"])
def test_arguments_that_only_look_alike_pass(crds: dict[str, dict[str, Any]], arg: str) -> None:
    assert _refusals(crds, _manifest("vllm", [arg])) == (None, [])


@pytest.mark.parametrize(
    "arg,named",
    [("--model", "spec.source"), ("model_path=/tmp/x", "spec.source"), ("--served-model-name=x", "spec.model"),
     ("--host=0.0.0.0", "address"), ("--port", "port")],
)  # fmt: skip
@pytest.mark.parametrize("backend", ["llama-cpp", "vllm", "mlx-vlm"])
def test_serve_arguments_are_owned_on_every_backend(
    crds: dict[str, dict[str, Any]], backend: str, arg: str, named: str
) -> None:
    refused, messages = _refusals(crds, _manifest(backend, [arg, "1"]))
    assert refused is not None and named in refused
    assert len(messages) == 1 and named in messages[0]


def _typed_fields() -> list[tuple[engine_flags.Flag, llmserver.Backend]]:
    return [(flag, engine) for flag in engine_flags.flags() if flag.crd_field for engine in flag.engines]


@pytest.mark.parametrize("flag,engine", _typed_fields(), ids=lambda v: getattr(v, "name", None) or v.value)
def test_every_typed_engine_flag_is_owned_by_its_field(
    crds: dict[str, dict[str, Any]], flag: engine_flags.Flag, engine: llmserver.Backend
) -> None:
    block = llmserver.LLMServerSpec.model_fields[engine_flags.config_attr(engine)].alias
    assert flag.crd_field is not None
    field = f"spec.{block}.{engine_flags.config_class(engine).model_fields[flag.crd_field].alias}"
    for spelling in (f"{flag.option}=1", flag.option, f"{flag.name}=1"):
        for backend in (engine.value, "auto"):
            refused, messages = _refusals(crds, _manifest(backend, [spelling]))
            assert refused is not None and field in refused, (spelling, backend)
            assert len(messages) == 1 and field in messages[0], (spelling, backend, messages)


def test_a_flag_of_another_engine_is_passed_on(crds: dict[str, dict[str, Any]]) -> None:
    """Owned means owned by a field of the backend in use: llama-cpp has no tensor parallelism field."""
    assert _refusals(crds, _manifest("llama-cpp", ["--tensor-parallel-size=2"])) == (None, [])
    assert _refusals(crds, _manifest("mlx", ["max_tokens=3"])) == (None, [])


def test_extra_args_are_bounded(crds: dict[str, dict[str, Any]]) -> None:
    """Bounds keep the CEL rules' cost within the API server's budget."""
    for args in (["--seed=1"] * 65, ["x" * 2049]):
        with pytest.raises(pydantic.ValidationError):
            llmserver.LLMServer.model_validate(_manifest("vllm", args))
        assert crd_validation.api_server_problems(crds, _manifest("vllm", args))


@pytest.mark.parametrize("spelling", ["-tp", "-tp=2", "--tensor-parallel", "--tensor-parallel=2", "--te"])
def test_vllm_short_and_abbreviated_spellings_of_an_owned_flag_are_refused(
    crds: dict[str, dict[str, Any]], spelling: str
) -> None:
    """vLLM's argparse takes `-tp` and unambiguous abbreviations: they set the typed field's flag too."""
    refused, messages = _refusals(crds, _manifest("vllm", [spelling]))
    assert refused is not None and "spec.vllm.tensorParallelSize" in refused, spelling
    assert len(messages) == 1, messages
    assert _refusals(crds, _manifest("vllm", ["--max-num-seqs=8"])) == (None, [])
