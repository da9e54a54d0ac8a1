"""Split GGUFs (`model-00001-of-00003.gguf`): the part names, and local files judged from the
first part, which alone carries the model's header (later parts hold only split keys)."""

from __future__ import annotations

import pathlib

import gguf
import numpy as np
import pytest

from llmserver_api import detection


def test_split_parts_lists_every_part_in_the_same_folder() -> None:
    assert detection.split_parts("q8/m-00002-of-00003.gguf") == (
        "q8/m-00001-of-00003.gguf", "q8/m-00002-of-00003.gguf", "q8/m-00003-of-00003.gguf")  # fmt: skip
    assert detection.split_parts("M-Q4-00001-of-00002.GGUF") == ("M-Q4-00001-of-00002.GGUF", "M-Q4-00002-of-00002.GGUF")


@pytest.mark.parametrize(
    "name",
    [
        "m.gguf",
        "m-00001-of-00003.safetensors",
        "m-00000-of-00003.gguf",
        "m-00004-of-00003.gguf",
        "m-1-of-3.gguf",
        "model-00001-of-00003.bin",
    ],
)
def test_split_parts_is_empty_for_anything_else(name: str) -> None:
    assert detection.split_parts(name) == ()


def _write_split_encoder(directory: pathlib.Path) -> list[pathlib.Path]:
    """A two-part GGUF of a `bert` encoder (an embedding model), written by gguf's own writer: the
    architecture is in part 1's header only; the file names say nothing about embeddings."""
    directory.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(directory / "model.gguf"), "bert", split_max_tensors=1)
    for name in ("token_embd.weight", "output_norm.weight"):
        writer.add_tensor(name, np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    parts = sorted(directory.glob("*.gguf"))
    assert [p.name for p in parts] == ["model-00001-of-00002.gguf", "model-00002-of-00002.gguf"]
    return parts


def test_a_later_part_as_the_path_is_judged_from_the_first(tmp_path: pathlib.Path) -> None:
    first, second = _write_split_encoder(tmp_path / "m")
    assert detection.read_gguf_header(second) == {}, "later parts carry no architecture"
    local = detection.local_model_files(second)
    assert local.files == (first.name, second.name) and local.gguf_metadata["general.architecture"] == "bert"
    result = detection.detect(local, detection.Hardware.CPU)
    assert result.decided and result.model_file == first.name
    assert result.capabilities == (detection.Capability.EMBEDDINGS,), result.reason


def test_a_directory_is_judged_from_the_first_part(tmp_path: pathlib.Path) -> None:
    _write_split_encoder(tmp_path / "m")
    result = detection.detect(detection.local_model_files(tmp_path / "m"), detection.Hardware.CPU)
    assert result.model_file == "model-00001-of-00002.gguf"
    assert result.capabilities == (detection.Capability.EMBEDDINGS,), result.reason


def test_a_missing_part_leaves_a_later_part_undecided(tmp_path: pathlib.Path) -> None:
    first, second = _write_split_encoder(tmp_path / "m")
    first.unlink()
    result = detection.detect(detection.local_model_files(second), detection.Hardware.CPU)
    assert not result.decided
    assert "lacks 1 of its 2 parts (model-00001-of-00002.gguf)" in result.reason
