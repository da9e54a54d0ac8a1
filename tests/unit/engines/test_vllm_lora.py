"""vLLM's LoRA flags from the adapters given at start, checked against vLLM's own parser, and the
stable int id each adapter name keeps (vLLM's LoRA cache key)."""

from __future__ import annotations

import json
import pathlib

import pytest
from llmserver_backends import base, vllm_args, vllm_lora

pytestmark = pytest.mark.timeout(240)


def _adapter(folder: pathlib.Path, rank: int) -> str:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    return str(folder)


def _config(adapters: dict[str, str], *extra: str) -> base.BackendConfig:
    return base.BackendConfig(model_path="/models/tiny", served_model_name="tiny", adapters=adapters, extra_args=extra)


def test_no_adapters_leave_lora_off() -> None:
    parsed = vllm_args.engine_args(_config({}), gpu_count=0)
    assert not parsed.enable_lora


def test_adapters_enable_lora_sized_by_their_count_and_largest_rank(tmp_path: pathlib.Path) -> None:
    adapters = {"a": _adapter(tmp_path / "a", 8), "b": _adapter(tmp_path / "b", 48), "c": str(tmp_path / "none")}
    parsed = vllm_args.engine_args(_config(adapters), gpu_count=0)
    assert (parsed.enable_lora, parsed.max_loras, parsed.max_lora_rank) == (True, 3, 64)


def test_small_ranks_keep_vllms_default_room_and_extra_args_win(tmp_path: pathlib.Path) -> None:
    adapters = {"a": _adapter(tmp_path / "a", 4)}
    assert vllm_args.engine_args(_config(adapters), gpu_count=0).max_lora_rank == 16
    parsed = vllm_args.engine_args(_config(adapters, "--max-loras", "4", "--max-lora-rank", "32"), gpu_count=0)
    assert (parsed.max_loras, parsed.max_lora_rank) == (4, 32)
    assert vllm_args.engine_args(_config({}, "--enable-lora"), gpu_count=0).enable_lora is True


def test_ranks_round_up_to_what_vllm_allows() -> None:
    assert vllm_lora.max_lora_rank([None]) == 16
    assert vllm_lora.max_lora_rank([300]) == 320
    assert vllm_lora.max_lora_rank([4096]) == 512


def test_ids_are_stable_per_name_and_path_and_never_reused() -> None:
    ids = vllm_lora.LoraIds({"a": "/p/a", "b": "/p/b"})
    assert (ids.get("a"), ids.get("b")) == ((1, "/p/a"), (2, "/p/b"))
    assert ids.add("a", "/p/a") == 1
    assert ids.add("a", "/p/a2") == 3  # new weights, new id: vLLM never reuses the old ones
    assert ids.remove("b") == 2 and ids.remove("b") is None
    assert ids.add("b", "/p/b") == 4
    assert ids.names() == ("a", "b")
    request = ids.request("a")
    assert (request.lora_name, request.lora_int_id, request.lora_path) == ("a", 3, "/p/a2")
