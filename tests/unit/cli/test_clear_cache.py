"""clear-cache: what NAME and --all free (bytes said), and the refusal to delete what a running
`llmserver up` uses (its pid and in-use file are faked with this test's own live pid)."""

from __future__ import annotations

import os
import pathlib

import pytest
from click.testing import CliRunner, Result

from llmserver_cli import cli
from llmserver_cli.local import cache_clear, cache_use, state

SHA = "12" * 32


def put(path: pathlib.Path, size: int) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.fixture()
def cache(tmp_path: pathlib.Path) -> pathlib.Path:
    """A cache like the downloader leaves it: a Hub repo at two revisions, one URL file with its
    marker, one S3 object with its marker and an abandoned partial."""
    root = tmp_path / "cache"
    put(root / "hf/Org/Model/main/model.safetensors", 1000)
    put(root / "hf/Org/Model/main/.llmserver-download.json", 10)
    put(root / "hf/Org/Model/v2/model.safetensors", 500)
    put(root / f"url/mirror.example/{SHA}/q.gguf", 300)
    put(root / f"url/mirror.example/{SHA}/.q.gguf.llmserver-download.json", 7)
    put(root / "s3/bucket/models/a.gguf", 200)
    put(root / "s3/bucket/models/.a.gguf.llmserver-download.json", 5)
    put(root / "s3/bucket/models/b.gguf.part", 50)
    return root


def clear(tmp_path: pathlib.Path, *args: str) -> Result:
    return CliRunner().invoke(cli.main, ["clear-cache", *args, "--cache-dir", str(tmp_path / "cache"),
                                         "--state-dir", str(tmp_path / "state")])  # fmt: skip


def running_up(tmp_path: pathlib.Path, servers: dict[str, list[str]], publish: bool = True) -> None:
    """A state file and in-use file as a live `up` writes them (this process stands in for it)."""
    state_dir = tmp_path / "state"
    state.write(state_dir / "state.json", state.LocalState(pid=os.getpid(), gateway_url="http://127.0.0.1:1"))
    if publish:
        cache_use.write(cache_use.file_of(state_dir), os.getpid(), tmp_path / "cache", servers)


def test_a_repo_frees_every_revision_and_says_the_bytes(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    result = clear(tmp_path, "Org/Model")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "freed 1510 bytes (1.5 KiB)"
    assert not (cache / "hf").exists()  # emptied folders go too
    assert (cache / "url").exists() and (cache / "s3").exists()


def test_an_url_and_an_s3_object_go_with_their_markers(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    url = clear(tmp_path, f"https://mirror.example/q.gguf#sha256={SHA}")
    assert url.exit_code == 0 and "freed 307 bytes" in url.output
    assert not (cache / "url").exists()
    s3 = clear(tmp_path, "s3://bucket/models/a.gguf")
    assert s3.exit_code == 0 and "freed 205 bytes" in s3.output
    assert sorted(p.name for p in (cache / "s3/bucket/models").iterdir()) == ["b.gguf.part"]


def test_all_frees_everything_when_nothing_runs(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    result = clear(tmp_path, "--all")
    assert result.exit_code == 0 and "freed 2072 bytes" in result.output
    assert list(cache.iterdir()) == []


def test_unknown_names_and_empty_matches(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    unknown = clear(tmp_path, "nothing-like-this")
    assert unknown.exit_code == 2 and "no server of the local set" in unknown.output
    absent = clear(tmp_path, "Org/Other")
    assert absent.exit_code == 0 and "nothing cached for Org/Other" in absent.output and "freed 0 bytes" in absent.output
    assert clear(tmp_path).exit_code == 2 and clear(tmp_path, "Org/Model", "--all").exit_code == 2


def test_what_a_running_up_uses_is_refused_and_kept(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    running_up(tmp_path, {"qwen": [str(cache / "hf/Org/Model/main/model.safetensors")],
                          "local": ["/elsewhere/model.gguf"]})  # fmt: skip
    refused = clear(tmp_path, "Org/Model")
    assert refused.exit_code == 1
    assert "used by qwen of the running `llmserver up`" in refused.output and "nothing was deleted" in refused.output
    assert (cache / "hf/Org/Model/v2/model.safetensors").exists()  # not even the other revision
    by_name = clear(tmp_path, "qwen")
    assert by_name.exit_code == 1 and "refused" in by_name.output

    everything = clear(tmp_path, "--all")
    assert everything.exit_code == 1
    assert "freed 1062 bytes" in everything.output  # the v2 revision, the URL file, the S3 object
    assert "kept " + str(cache / "hf/Org/Model/main") in everything.output
    assert sorted(p.name for p in (cache / "hf/Org/Model/main").iterdir()) == [".llmserver-download.json", "model.safetensors"]
    assert sorted(p.name for p in cache.iterdir()) == ["hf"]


def test_an_up_that_has_not_published_yet_is_refused(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    running_up(tmp_path, {}, publish=False)
    result = clear(tmp_path, "--all")
    assert result.exit_code == 1 and "try again in a moment" in result.output
    assert (cache / "hf/Org/Model/main/model.safetensors").exists()


def test_a_stale_in_use_file_of_a_dead_up_protects_nothing(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    cache_use.write(cache_use.file_of(tmp_path / "state"), 2**22 + 7, cache, {"qwen": [str(cache / "hf")]})
    assert clear(tmp_path, "Org/Model").exit_code == 0


def test_entries_and_companions() -> None:
    root = pathlib.Path("/c")
    assert cache_clear.entry_of(root / "hf/o/n/main/sub/f.gguf", root) == root / "hf/o/n/main"
    assert cache_clear.entry_of(root / f"url/h/{SHA}/q.gguf", root) == root / f"url/h/{SHA}"
    assert cache_clear.entry_of(root / "s3/b/k.gguf", root) == root / "s3/b/k.gguf"
    assert cache_clear.companions(root / "s3/b/k.gguf")[1:] == [root / "s3/b/.k.gguf.llmserver-download.json",
                                                                 root / "s3/b/k.gguf.part"]  # fmt: skip
