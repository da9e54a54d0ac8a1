"""Detection over file lists modelled on real public repos (tests/unit/detection/fixtures/*.yaml).

Each fixture is one repo's files and config files as huggingface-hub reports them; each case
states what detection must decide on GPU, CPU and Apple hardware (null: it must say it cannot
decide) and words its reasons must contain. The same fixtures are also written to disk to test
the local-directory path (`local_model_files`) against the in-memory one.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
import yaml

from llmserver_api import detection

FIXTURES = sorted((pathlib.Path(__file__).parent / "fixtures").glob("*.yaml"))


def _load(path: pathlib.Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


CASES = [(path, case) for path in FIXTURES for case in _load(path)["cases"]]


def model_files(fixture: dict[str, Any], case: dict[str, Any]) -> detection.ModelFiles:
    """The fixture as detection's input; `no_hub_metadata` drops what only the hub knows (tags)."""
    hub = not case.get("no_hub_metadata")
    return detection.ModelFiles(
        files=tuple(fixture["files"]),
        configs=fixture.get("configs") or {},
        name=fixture["repo"],
        selected_file=case.get("file"),
        tags=tuple(fixture.get("tags") or ()) if hub else (),
        library_name=fixture.get("library_name") if hub else None,
        gguf_metadata=case.get("gguf_metadata") or {},
    )


def _text(result: detection.Detection) -> str:
    return result.reason + " | " + " | ".join(result.warnings)


@pytest.mark.parametrize("path,case", CASES, ids=[f"{p.stem}:{c['name']}" for p, c in CASES])
def test_detection_matches_the_fixture(path: pathlib.Path, case: dict[str, Any]) -> None:
    results = detection.detect_all(model_files(_load(path), case))
    for hardware, result in results.items():
        expected_backend = case["backend"][hardware.value]
        where = f"{hardware.value}: {result.reason}"
        assert result.format.value == case["format"], where
        assert [c.value for c in result.capabilities] == case["capabilities"], where
        assert (result.backend.value if result.backend else None) == expected_backend, where
        if "model_file" in case and result.decided:
            assert result.model_file == case["model_file"]
        mentions = case.get("mentions", {})
        for word in mentions.get("all", []) + mentions.get(hardware.value, []):
            assert word in _text(result), f"{hardware.value}: {word!r} not in {_text(result)!r}"
    warnings = [warning for result in results.values() for warning in result.warnings]
    for word in case.get("warnings", []):
        assert any(word in warning for warning in warnings), f"{word!r} not in {warnings}"


@pytest.mark.parametrize("path,case", CASES, ids=[f"{p.stem}:{c['name']}" for p, c in CASES])
def test_every_decision_explains_itself(path: pathlib.Path, case: dict[str, Any]) -> None:
    for result in detection.detect_all(model_files(_load(path), case)).values():
        if result.decided:
            assert result.reasons and not result.problems
            assert result.capabilities, "a decided model serves something"
        else:
            # Never a silent guess: it says it cannot decide, why, and what it saw.
            assert result.problems
            assert result.reason.startswith("cannot decide: ") and f"(saw {result.seen})" in result.reason
            assert result.seen.split(" ")[0].isdigit()


def test_fixtures_cover_every_format_and_backend() -> None:
    formats, backends, undecided = set(), set(), 0
    for path, case in CASES:
        for result in detection.detect_all(model_files(_load(path), case)).values():
            formats.add(result.format)
            backends.add(result.backend)
            undecided += not result.decided
    assert formats == set(detection.ModelFormat)
    assert backends == set(detection.Backend) - {detection.Backend.AUTO} | {None}
    assert len(FIXTURES) >= 20 and undecided > 0


def _materialize(fixture: dict[str, Any], root: pathlib.Path, unreadable: bool) -> pathlib.Path:
    """Writes the fixture as a directory: empty files, and the config files as JSON."""
    for name in fixture["files"]:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")
    for name, content in (fixture.get("configs") or {}).items():
        (root / name).write_text(json.dumps(content))
    if unreadable:
        (root / "config.json").write_text('{"architectures": ["LlamaFor')  # truncated copy
    return root


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_a_local_directory_is_judged_like_the_repo(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    fixture = _load(path)
    case = {"no_hub_metadata": True}
    directory = _materialize(fixture, tmp_path / "model", unreadable=fixture["repo"] == "local/broken-copy")
    local = detection.local_model_files(directory)
    dotfiles = [name for name in fixture["files"] if name.startswith(".")]
    assert sorted(local.files) == sorted(set(fixture["files"]) - set(dotfiles))
    from_disk = detection.detect_all(local)
    from_listing = detection.detect_all(model_files(fixture, case))
    for hardware in detection.Hardware:
        assert from_disk[hardware].backend == from_listing[hardware].backend
        assert from_disk[hardware].format == from_listing[hardware].format
        assert from_disk[hardware].capabilities == from_listing[hardware].capabilities


def test_a_single_gguf_path_is_that_file(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "qwen2.5-0.5b-instruct-q4_k_m.gguf"
    model.write_bytes(b"GGUF")
    result = detection.detect(detection.local_model_files(model), detection.Hardware.CPU)
    assert (result.format, result.backend, result.model_file) == (
        detection.ModelFormat.GGUF, detection.Backend.LLAMA_CPP, model.name)


def test_a_missing_path_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model file or directory"):
        detection.local_model_files(tmp_path / "absent")
