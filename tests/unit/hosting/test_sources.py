"""Where a `source.pvc` lives off the cluster. Locally (the user's own manifests) claimName is any
folder, absolute, `~` or relative to the manifest, as the README documents. On a multi-tenant host
(the Mac agent, origin `ModelsRoot`) a claim is a folder under the models root and nothing else:
whatever would leave it is refused, and the server fails with that message rather than loading."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

import llmserver_api
from llmserver_cli.hosting import engine, settings, sources


def _server(claim_name: str, path: str = "") -> llmserver_api.LLMServer:
    pvc = {"claimName": claim_name, **({"path": path} if path else {})}
    return llmserver_api.LLMServer.model_validate({
        "metadata": {"name": "m", "namespace": "ml"},
        "spec": {"model": "m", "backend": "mlx", "source": {"pvc": pvc}},
    })


def test_a_claim_is_a_folder_under_the_models_root(tmp_path: pathlib.Path) -> None:
    root = sources.ModelsRoot(tmp_path / "models")
    expected = tmp_path / "models" / "store" / "qwen" / "model.gguf"
    assert sources.pvc_path(_server("store", "qwen/model.gguf"), root) == expected
    assert sources.pvc_path(_server("store"), root) == tmp_path / "models" / "store"
    assert sources.model_path(_server("store", "q"), root, tmp_path / "cache") == tmp_path / "models" / "store" / "q"


@pytest.mark.parametrize(
    "claim_name", ["/etc", "/", "~", "~/Library/Keychains", "~root", "..", "../other-tenant", "store/../..", ".ssh",
                   "store/.git", "./store", "store//x", "C:\\x"],
)  # fmt: skip
def test_a_claim_that_leaves_the_models_root_is_refused(tmp_path: pathlib.Path, claim_name: str) -> None:
    with pytest.raises(sources.OutsideModelsRoot) as refused:
        sources.pvc_path(_server(claim_name, "model.gguf"), sources.ModelsRoot(tmp_path))
    message = str(refused.value)
    assert "spec.source.pvc.claimName" in message and str(tmp_path) in message and repr(claim_name) in message


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", ".hidden"])
def test_a_path_that_leaves_the_claim_is_refused_too(tmp_path: pathlib.Path, path: str) -> None:
    """The CRD already refuses these paths; the host does not rely on that alone."""
    with pytest.raises(sources.OutsideModelsRoot, match="spec.source.pvc.path"):
        sources.under_root(tmp_path, "store", path)


def test_local_mode_keeps_its_documented_folders(tmp_path: pathlib.Path) -> None:
    """`llmserver up` runs the user's own manifests: absolute, `~` and manifest-relative claimNames."""
    manifest = tmp_path / "deploy" / "server.yaml"
    assert sources.pvc_path(_server(str(tmp_path / "abs"), "m.gguf"), manifest) == tmp_path / "abs" / "m.gguf"
    assert sources.pvc_path(_server("./models", "m.gguf"), manifest) == tmp_path / "deploy" / "models" / "m.gguf"
    assert sources.pvc_path(_server("../shared"), manifest) == (tmp_path / "deploy" / ".." / "shared").absolute()
    assert sources.pvc_path(_server("~/models"), manifest) == pathlib.Path("~/models").expanduser().absolute()


def test_the_server_fails_with_the_reason_instead_of_loading(tmp_path: pathlib.Path) -> None:
    (tmp_path / "etc").mkdir()
    config = settings.EngineSettings(python="/bin/false", cache_dir=tmp_path, log_dir=tmp_path, env={})
    the_engine = engine.Engine(config, lambda: None)

    async def bring_up() -> None:
        unit = the_engine.add("ml/m", _server(str(tmp_path / "etc")), sources.ModelsRoot(tmp_path / "models"))
        the_engine.launch(unit)
        assert unit.task is not None
        await unit.task

    asyncio.run(bring_up())
    unit = the_engine.units["ml/m"]
    assert unit.phase == "Failed" and unit.process is None
    assert "spec.source.pvc.claimName" in unit.message and "models root" in unit.message
