"""The engine flags' one declaration: its public names stay fixed and every CRD block maps onto it.

The round trip through the real `serve` parser lives in tests/unit/runtime/test_serve_engine_flags.py.
"""

from __future__ import annotations

import llmserver_api
from llmserver_api import engine_flags, llmserver

from testkit import crd_validation

# Contracts (docs/contracts.md): the option, env and CRD names of every engine flag, per engine.
EXPECTED = {
    "llama-cpp": [("--n-gpu-layers", "LLMSERVER_N_GPU_LAYERS", "nGpuLayers"),
                  ("--n-ctx", "LLMSERVER_N_CTX", "nCtx"),
                  ("--n-batch", "LLMSERVER_N_BATCH", "nBatch"),
                  ("--n-threads", "LLMSERVER_N_THREADS", "nThreads"),
                  ("--parallel", "LLMSERVER_PARALLEL", "parallel")],
    "transformers": [("--load-in-4bit", "LLMSERVER_LOAD_IN_4BIT", "loadIn4bit"),
                     ("--load-in-8bit", "LLMSERVER_LOAD_IN_8BIT", "loadIn8bit"),
                     ("--dtype", "LLMSERVER_DTYPE", "dtype"),
                     ("--max-batch-size", "LLMSERVER_MAX_BATCH_SIZE", "maxBatchSize")],
    "vllm": [("--tensor-parallel-size", "LLMSERVER_TENSOR_PARALLEL_SIZE", "tensorParallelSize"),
             ("--gpu-memory-utilization", "LLMSERVER_GPU_MEMORY_UTILIZATION", "gpuMemoryUtilization"),
             ("--max-model-len", "LLMSERVER_MAX_MODEL_LEN", "maxModelLen"), ("--dtype", "LLMSERVER_DTYPE", "dtype")],
    "mlx": [("--max-kv-size", "LLMSERVER_MAX_KV_SIZE", "maxKvSize")],
    "mlx-vlm": [("--max-kv-size", "LLMSERVER_MAX_KV_SIZE", "maxKvSize"),
                ("--max-tokens", "LLMSERVER_MAX_TOKENS", "maxTokens")],
}  # fmt: skip


def _wire_name(engine: llmserver_api.Backend, crd_field: str) -> str:
    field = engine_flags.config_class(engine).model_fields[crd_field]
    return field.alias or crd_field


def test_flag_env_and_crd_names_are_the_contracts() -> None:
    found = {
        engine.value: [(flag.option, flag.env, _wire_name(engine, flag.crd_field))
                       for flag in engine_flags.for_engine(engine) if flag.crd_field is not None]
        for engine in engine_flags.ENGINES
    }
    assert found == EXPECTED


def test_every_crd_config_field_is_exactly_one_flag() -> None:
    for engine in engine_flags.ENGINES:
        block_fields = list(engine_flags.config_class(engine).model_fields)
        mapped = [flag.crd_field for flag in engine_flags.for_engine(engine) if flag.crd_field is not None]
        assert sorted(mapped) == sorted(block_fields), f"{engine.value}: CRD fields and flags differ"


def test_every_flag_names_its_engines_and_a_crd_field_or_is_cli_only() -> None:
    for flag in engine_flags.flags():
        assert flag.engines, f"{flag.name} names no engine"
        assert flag.description, f"{flag.name} has no description"
        assert flag.value_type in (int, float, str, bool), f"{flag.name}: a serve flag takes int, float, str or bool"
        for engine in flag.engines:
            if flag.crd_field is not None:
                assert flag.crd_field in engine_flags.config_class(engine).model_fields, (
                    f"{flag.name} maps from {engine.value}.{flag.crd_field}, which the CRD lacks"
                )


def test_every_engine_has_a_config_block_in_the_spec() -> None:
    blocks = {name for name, field in llmserver.LLMServerSpec.model_fields.items()
              if name.replace("_", "-") in {backend.value for backend in llmserver_api.Backend}}
    assert blocks == {engine_flags.config_attr(engine) for engine in engine_flags.ENGINES}


def test_crd_defaults_give_no_flag() -> None:
    spec = llmserver.LLMServerSpec(model="m", source={"pvc": {"claimName": "c"}})
    for engine in engine_flags.ENGINES:
        assert [value for _, value in engine_flags.from_crd(spec, engine)] == [None] * len(
            engine_flags.config_class(engine).model_fields
        )


def test_docs_synopsis_lists_the_derived_flag_lines() -> None:
    """docs/contracts.md shows exactly what the model derives, right after the common serve flags."""
    lines = (crd_validation.REPO_ROOT / "docs" / "contracts.md").read_text().splitlines()
    start = next(index for index, line in enumerate(lines) if "[--request-timeout SECONDS]" in line) + 1
    end = next(index for index, line in enumerate(lines) if line.lstrip().startswith("[-- EXTRA ENGINE ARGS"))
    assert lines[start:end] == engine_flags.synopsis_lines()
