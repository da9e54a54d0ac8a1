"""LoRA adapter plumbing: `--adapter NAME=PATH` specs, `<model>:<name>` resolution, the trusted
root that confines live loads, and the fake backend's adapters (what other tests route by)."""

from __future__ import annotations

import os
import pathlib

import llmserver_api
import pytest
from llmserver_backends import base, fake, registry

from llmserver_api.protocol import errors
from llmserver_runtime.server import adapters, settings


def _fake(adapters_: dict[str, str] | None = None, **options: object) -> fake.FakeBackend:
    config = base.BackendConfig(
        model_path="-", served_model_name="m", options=dict(options), adapters=dict(adapters_ or {})
    )
    backend = registry.create("fake", config)
    assert isinstance(backend, fake.FakeBackend)
    return backend


class _StaticAdapters(fake.FakeBackend):
    supports_live_adapters = False


async def _text(backend: base.ModelBackend, adapter: str | None) -> str:
    params = base.SamplingParams(max_tokens=8, seed=1, adapter=adapter)
    return "".join([delta.text async for delta in backend.complete("hello there", params)])


def test_specs_parse_in_order_and_refuse_bad_names_duplicates_and_missing_paths() -> None:
    assert adapters.parse_specs(["sql=/a", " chat.v2 = /b "]) == {"sql": "/a", "chat.v2": "/b"}
    assert list(adapters.parse_specs(["b=/1", "a=/2"])) == ["b", "a"]
    for bad, message in [
        ("noequals", "NAME=PATH"),
        ("=/p", "NAME=PATH"),
        ("x=", "NAME=PATH"),
        ("-x=/p", "must be 1-63"),
        ("a:b=/p", "must be 1-63"),
        ("x" * 64 + "=/p", "must be 1-63"),
    ]:
        with pytest.raises(ValueError, match=message):
            adapters.parse_specs([bad])
    with pytest.raises(ValueError, match="given twice"):
        adapters.parse_specs(["a=/1", "a=/2"])


def test_settings_take_adapters_from_flags_or_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = settings.ServeSettings(backend="fake", model="-", served_model_name="m", adapters=["a=/x", "b=/y"])
    assert flags.backend_config().adapters == {"a": "/x", "b": "/y"}
    monkeypatch.setenv("LLMSERVER_ADAPTERS", "sql=/models/sql, chat=/models/chat")
    monkeypatch.setenv("LLMSERVER_ADAPTER_ROOT", "/srv/adapters")
    from_env = settings.ServeSettings(backend="fake", model="-", served_model_name="m")
    assert from_env.backend_config().adapters == {"sql": "/models/sql", "chat": "/models/chat"}
    assert from_env.adapter_root == "/srv/adapters"
    monkeypatch.setenv("LLMSERVER_ADAPTERS", "bad name=/p")
    with pytest.raises(ValueError, match="must be 1-63"):
        settings.ServeSettings(backend="fake", model="-", served_model_name="m")


def test_trusted_root_is_the_configured_one_else_the_cache_mount_else_the_model_folder(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "models" / "m.gguf"
    assert adapters.trusted_root(str(model), str(tmp_path / "root")) == tmp_path / "root"
    assert adapters.trusted_root(str(model), None) == tmp_path / "models"
    assert adapters.trusted_root("/models/hub/x/snapshots/abc", None) == pathlib.Path(os.path.realpath("/models"))


def test_confine_refuses_relative_paths_dot_dot_and_symlinks_out_of_the_root(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    assert adapters.confine(str(root / "a"), root) == str(root / "a")
    for path in ["a", str(root / ".." / "outside"), str(root / "escape"), "/etc"]:
        with pytest.raises(errors.APIError) as caught:
            adapters.confine(path, root)
        assert (caught.value.status_code, caught.value.detail.param) == (400, "lora_path")
    with pytest.raises(errors.APIError) as missing:
        adapters.confine(str(root / "absent"), root)
    assert missing.value.status_code == 404


def test_model_names_resolve_to_the_base_or_a_loaded_adapter_else_404() -> None:
    names = adapters.Adapters(_fake({"sql": "/p"}), "m", pathlib.Path("/"))
    assert names.resolve("m") is None
    assert names.resolve("m:sql") == "sql"
    for unknown in ["m:chat", "other:sql", "sql", "m:", "m:sql:x"]:
        with pytest.raises(errors.APIError) as caught:
            names.resolve(unknown)
        assert (caught.value.status_code, caught.value.detail.code) == (404, "model_not_found")
    names.require_generation("sql", llmserver_api.Capability.TEXT_GENERATION)
    with pytest.raises(errors.APIError, match="send Embeddings requests to `m`") as refused:
        names.require_generation("sql", llmserver_api.Capability.EMBEDDINGS)
    assert (refused.value.status_code, refused.value.detail.param) == (400, "model")


async def test_live_loads_are_confined_idempotent_and_replace_only_in_place(tmp_path: pathlib.Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    backend = _fake()
    live = adapters.Adapters(backend, "m", tmp_path)
    assert "added" in await live.load("sql", str(tmp_path / "one"))
    assert "already loaded" in await live.load("sql", str(tmp_path / "one"))
    with pytest.raises(errors.APIError, match="load_inplace"):
        await live.load("sql", str(tmp_path / "two"))
    await live.load("sql", str(tmp_path / "two"), inplace=True)
    assert live.paths() == {"sql": str(tmp_path / "two")}
    with pytest.raises(errors.APIError, match="must stay under"):
        await live.load("etc", "/etc")
    with pytest.raises(errors.APIError, match="lora_name must be"):
        await live.load("../x", str(tmp_path / "one"))
    await live.unload("sql")
    assert backend.adapters == ()
    with pytest.raises(errors.APIError) as gone:
        await live.unload("sql")
    assert gone.value.status_code == 404


async def test_a_live_load_of_a_start_adapters_own_path_changes_nothing(tmp_path: pathlib.Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    backend = _fake({"sql": str(tmp_path / "link")})
    live = adapters.Adapters(backend, "m", tmp_path)
    assert "already loaded" in await live.load("sql", str(tmp_path / "real"))


async def test_engines_without_live_adapters_refuse_loads_with_a_400_naming_why(tmp_path: pathlib.Path) -> None:
    config = base.BackendConfig(model_path="-", served_model_name="m", adapters={"sql": "/p"})
    static = adapters.Adapters(_StaticAdapters(config), "m", tmp_path)
    for call in (static.load("x", str(tmp_path)), static.unload("sql")):
        with pytest.raises(errors.APIError, match="only at start") as caught:
            await call
        assert caught.value.status_code == 400


async def test_fake_adapters_change_the_output_deterministically() -> None:
    backend = _fake({"sql": "/p", "chat": "/q"})
    base_text, sql, chat = await _text(backend, None), await _text(backend, "sql"), await _text(backend, "chat")
    assert len({base_text, sql, chat}) == 3
    assert sql == await _text(backend, "sql")
    with pytest.raises(base.UnsupportedRequest, match="not loaded"):
        await _text(backend, "absent")


async def test_fake_live_adapters_can_be_switched_off() -> None:
    backend = _fake(live_adapters=False)
    with pytest.raises(base.UnsupportedRequest, match="live_adapters=false"):
        await backend.load_adapter("x", "/p")
