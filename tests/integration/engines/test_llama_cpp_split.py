"""Split GGUFs for real: the tiny GGUF rewritten in three parts by the `gguf` package's own writer
(the layout llama.cpp's gguf-split and converters produce), served from a local Hub stand-in.

`llmserver-runtime download --file <any part>` brings every part (and nothing else); llama.cpp
then loads the model from its first part whether the runtime is given the first part, a later
part, or the directory (what the operator serves for a repo whose one model is split), with
`--backend llama-cpp` or `auto`; a missing part is named, never a bare load failure. Greedy
answers equal those of the unsplit file, so the parts hold the same model.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import gguf
import pytest

from llmserver_api import paths
from testkit import hub_server, runtime_server
from testkit.models import tiny_gguf  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PARTS = [f"tiny-0000{k}-of-00003.gguf" for k in (1, 2, 3)]
PROMPT = "The quick brown"


def _split(source: pathlib.Path, target: pathlib.Path, max_tensors: int) -> list[pathlib.Path]:
    """Rewrites `source` as a split GGUF in `target` (every key and tensor copied as is)."""
    target.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(str(source))
    writer = gguf.GGUFWriter(str(target / "tiny.gguf"), reader.fields["general.architecture"].contents(),
                             split_max_tensors=max_tensors)  # fmt: skip
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # the writer adds these itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        data = tensor.data
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return sorted(target.glob("*.gguf"))


@pytest.fixture(scope="module")
def whole(tiny_gguf: str) -> pathlib.Path:  # noqa: F811 - the imported fixture, requested
    return pathlib.Path(tiny_gguf)


@pytest.fixture(scope="module")
def parts(whole: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    written = _split(whole, tmp_path_factory.mktemp("split"), max_tensors=8)  # 21 tensors: 3 parts
    assert [p.name for p in written] == PARTS
    return {p.name: p.read_bytes() for p in written}


@pytest.fixture(scope="module")
def hub(parts: dict[str, bytes], whole: pathlib.Path) -> Iterator[hub_server.HubServer]:
    quants = {**{f"Q8_0/{name}": content for name, content in parts.items()}, "tiny-f32.gguf": whole.read_bytes()}
    repos = {
        "org/tiny-split": hub_server.HubRepo({**parts, "README.md": b"# tiny, split\n"}),
        "org/quants": hub_server.HubRepo(quants),
        "org/partial": hub_server.HubRepo({PARTS[0]: parts[PARTS[0]], PARTS[2]: parts[PARTS[2]]}),
    }
    with hub_server.HubServer(repos) as server:
        yield server


def download(hub: hub_server.HubServer, cache: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": hub.url, "HF_HOME": str(cache.parent / "hf-home")})
    argv = [sys.executable, "-m", "llmserver_runtime", "download", "--cache-dir", str(cache), "--retry-delay", "0",
            "--retries", "1", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=150, env=env, check=False)


def greedy(tmp: pathlib.Path, backend: str, model: pathlib.Path) -> str:
    with runtime_server.start(tmp, backend, str(model), "tiny", "--n-ctx", "256") as server:
        result = server.client().completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=0)
    return result.choices[0].text


@pytest.fixture(scope="module")
def reference(whole: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The unsplit file's greedy answer."""
    return greedy(tmp_path_factory.mktemp("whole"), "llama-cpp", whole)


def test_a_named_part_brings_every_part_and_nothing_else(
    hub: hub_server.HubServer, parts: dict[str, bytes], tmp_path: pathlib.Path
) -> None:
    cache = tmp_path / "models"
    result = download(hub, cache, "--repo", "org/quants", "--file", f"Q8_0/{PARTS[1]}")
    assert result.returncode == 0, result.stderr
    target = cache / paths.huggingface_dir("org/quants", "main")
    assert result.stdout.strip().splitlines()[-1] == str((target / "Q8_0" / PARTS[1]).resolve())
    assert {p.name: p.read_bytes() for p in (target / "Q8_0").glob("*.gguf")} == parts
    assert not (target / "tiny-f32.gguf").exists()
    again = download(hub, cache, "--repo", "org/quants", "--file", f"Q8_0/{PARTS[1]}")
    assert again.returncode == 0 and "already complete" in again.stdout, again.stdout + again.stderr


def test_a_part_missing_from_the_repo_is_named(hub: hub_server.HubServer, tmp_path: pathlib.Path) -> None:
    result = download(hub, tmp_path / "models", "--repo", "org/partial", "--file", PARTS[0])
    assert result.returncode != 0
    assert f"file '{PARTS[1]}', a part of the split GGUF '{PARTS[0]}', not found in org/partial" in result.stderr


def test_every_way_to_the_split_loads_the_same_model(
    hub: hub_server.HubServer, reference: str, tmp_path: pathlib.Path
) -> None:
    cache = tmp_path / "models"
    result = download(hub, cache, "--repo", "org/tiny-split")  # the operator's Job: no file for a split repo
    assert result.returncode == 0, result.stderr
    directory = cache / paths.huggingface_dir("org/tiny-split", "main")
    ways = [("llama-cpp", directory), ("auto", directory), ("llama-cpp", directory / PARTS[0]),
            ("llama-cpp", directory / PARTS[2]), ("auto", directory / PARTS[1])]  # fmt: skip
    answers = {f"{backend} {path.name}": greedy(tmp_path, backend, path) for backend, path in ways}
    assert reference and set(answers.values()) == {reference}, answers


def test_a_missing_part_fails_the_load_by_name(parts: dict[str, bytes], tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "partial"
    directory.mkdir()
    for name in (PARTS[0], PARTS[2]):
        (directory / name).write_bytes(parts[name])
    server = runtime_server.launch(tmp_path, "llama-cpp", str(directory / PARTS[0]), "tiny")
    assert server.proc.wait(timeout=120) == 1
    assert f"lacks 1 of its 3 parts: {PARTS[1]}" in server.output()
