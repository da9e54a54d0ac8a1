"""status.adapters of Mac-placed servers: the agent's entries follow its hosted unit (cluster shape
and phases), it writes only what differs from the API server's copy, and the operator's own status
writes for a placed Mac server never carry `adapters` (a merge patch would replace the agent's list)."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import llmserver_api
from llmserver_cli.apple import adapter_report, agent as agent_mod
from llmserver_cli.hosting import hosted, sources
from llmserver_operator import status

ADAPTERS = [{"name": "sql", "source": {"huggingFace": {"repo": "acme/sql-lora"}}},
            {"name": "chat", "source": {"pvc": {"claimName": "loras", "path": "chat"}}}]
PLACED = {"node": "mac-a", "address": "10.0.0.1", "port": 18000, "reason": "placed on mac-a"}


def server(replicas: int = 1, adapters: list[dict[str, Any]] | None = None) -> llmserver_api.LLMServer:
    return llmserver_api.LLMServer.model_validate({
        "apiVersion": llmserver_api.API_VERSION, "kind": "LLMServer", "metadata": {"name": "q", "namespace": "ns"},
        "spec": {"model": "q", "backend": "mlx", "source": {"pvc": {"claimName": "tiny"}}, "replicas": replicas,
                 "adapters": ADAPTERS if adapters is None else adapters}})


def unit(tmp_path: pathlib.Path, phase: str, message: str = "", **fields: Any) -> hosted.Hosted:
    made = hosted.Hosted(key="ns/q", server=server(), origin=sources.ModelsRoot(tmp_path / "models"),
                         changed=lambda: None, phase=phase, message=message)
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in entries}


def test_ready_runtime_serves_every_adapter_with_one_ready_replica(tmp_path: pathlib.Path) -> None:
    out = adapter_report.entries(server(), unit(tmp_path, "Ready"), "mac-a", tmp_path / "cache")
    assert [(e["name"], e["phase"], e["readyReplicas"]) for e in out] == [("sql", "Ready", 1), ("chat", "Ready", 1)]
    assert out[0]["message"] == "served by the runtime on AppleNode 'mac-a'"


def test_a_failed_download_fails_only_that_adapter_with_the_downloaders_message(tmp_path: pathlib.Path) -> None:
    said = "download failed: checksum mismatch for adapter_model.safetensors"
    out = by_name(adapter_report.entries(server(), unit(tmp_path, "Ready", adapter_failures={"sql": said}),
                                         "mac-a", tmp_path / "cache"))
    assert (out["sql"]["phase"], out["sql"]["readyReplicas"], out["sql"]["message"]) == ("Failed", 0, said)
    assert (out["chat"]["phase"], out["chat"]["readyReplicas"]) == ("Ready", 1)


def test_an_adapter_the_runtime_refused_is_failed_the_others_pending(tmp_path: pathlib.Path) -> None:
    chat = sources.adapter_path(server().spec.adapters[1], sources.ModelsRoot(tmp_path / "models"), tmp_path / "cache")
    said = f"runtime exited with code 1: UnsupportedRequest: {chat} holds no adapter_config.json: not a LoRA adapter"
    out = by_name(adapter_report.entries(server(), unit(tmp_path, "Failed", said), "mac-a", tmp_path / "cache"))
    assert (out["chat"]["phase"], out["chat"]["message"]) == ("Failed", said)
    assert (out["sql"]["phase"], out["sql"]["readyReplicas"]) == ("Pending", 0)


def test_an_engine_that_takes_no_adapters_fails_them_all(tmp_path: pathlib.Path) -> None:
    said = ("runtime exited with code 1: loading model q (mlx-vlm backend) failed: ValueError: the mlx-vlm backend "
            "does not serve LoRA adapters (--adapter); use mlx or vllm")
    out = adapter_report.entries(server(), unit(tmp_path, "Failed", said), "mac-a", tmp_path / "cache")
    assert {(e["phase"], e["message"]) for e in out} == {("Failed", said)}
    other = adapter_report.entries(server(), unit(tmp_path, "Failed", "runtime exited with code 1: out of memory"),
                                   "mac-a", tmp_path / "cache")
    assert {e["phase"] for e in other} == {"Pending"}  # a failure that is not the adapters' own


def test_downloading_shows_the_adapters_progress_then_complete(tmp_path: pathlib.Path) -> None:
    busy = unit(tmp_path, "Downloading", adapter="sql", adapter_progress={"sql": (10, 40)})
    out = by_name(adapter_report.entries(server(), busy, "mac-a", tmp_path / "cache"))
    assert out["sql"]["phase"] == "Downloading"
    assert out["sql"]["download"] == {"bytesDone": 10, "bytesTotal": 40, "message": "downloading"}
    assert out["chat"]["phase"] == "Pending" and "download" not in out["chat"]
    assert agent_mod.download_report(busy) is None  # an adapter's bytes are not the model's status.download
    busy.adapter, busy.adapter_progress, busy.phase = None, {"sql": (40, 40)}, "Starting"
    out = by_name(adapter_report.entries(server(), busy, "mac-a", tmp_path / "cache"))
    assert out["sql"]["phase"] == "Pending" and out["sql"]["download"]["message"] == "complete"


def test_scaled_to_zero_or_unloaded_serves_none(tmp_path: pathlib.Path) -> None:
    for the_server, the_unit in ((server(replicas=0), None), (server(), unit(tmp_path, "Unloaded", "idle"))):
        out = adapter_report.entries(the_server, the_unit, "mac-a", tmp_path / "cache")
        assert {(e["phase"], e["readyReplicas"]) for e in out} == {("Pending", 0)}


def test_patch_only_when_the_api_servers_copy_differs() -> None:
    entries = [{"name": "sql", "phase": "Ready", "readyReplicas": 1, "message": "m"}]
    assert adapter_report.patch(entries, entries) is None
    assert adapter_report.patch([], None) is None  # no adapters and none listed: nothing to write
    assert adapter_report.patch(entries, None) == {"adapters": entries}
    assert adapter_report.patch([], entries) == {"adapters": []}  # all removed: the list is emptied
    wiped = [{**entries[0], "readyReplicas": 0}]
    assert adapter_report.patch(entries, wiped) == {"adapters": entries}


class RecordingKube:
    """The agent's kube calls it makes here: status patches, recorded."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def patch_status(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.patches.append((kind, f"{namespace}/{name}", body))


def test_the_agent_writes_status_adapters_once_per_change(tmp_path: pathlib.Path) -> None:
    from llmserver_cli.apple import agent_settings

    settings = agent_settings.AgentSettings(node_name="mac-a", address="127.0.0.1", cache_dir=tmp_path / "cache",
                                            log_dir=tmp_path / "logs")
    kube = RecordingKube()
    agent = agent_mod.AppleAgent(settings, kube)  # type: ignore[arg-type]
    agent.placed = {"ns/q": server()}
    agent.engine.units["ns/q"] = unit(tmp_path, "Starting")

    async def twice() -> None:
        await agent.relay_adapters()
        await agent.relay_adapters()

    asyncio.run(twice())
    assert len(kube.patches) == 1 and kube.patches[0][:2] == ("LLMServer", "ns/q")
    assert {e["phase"] for e in kube.patches[0][2]["adapters"]} == {"Pending"}
    agent.engine.units["ns/q"].phase = "Ready"
    asyncio.run(twice())
    assert len(kube.patches) == 2 and {e["readyReplicas"] for e in kube.patches[1][2]["adapters"]} == {1}


def mac_spec(**fields: Any) -> llmserver_api.LLMServerSpec:
    body = {"model": "q", "backend": "mlx", "source": {"pvc": {"claimName": "tiny"}}, "adapters": ADAPTERS, **fields}
    return llmserver_api.LLMServerSpec.model_validate(body)


def compute(observed: status.Observed, previous: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    return status.compute(spec=mac_spec(**fields), generation=2, previous=previous, observed=observed,
                          endpoint="http://gw/v1", now="2026-01-01T00:00:00Z")


def test_the_operator_leaves_a_placed_mac_servers_adapters_to_its_agent() -> None:
    agents = [{"name": "sql", "phase": "Ready", "readyReplicas": 1, "message": "served"}]
    previous = {"placement": PLACED, "adapters": agents}
    out = compute(status.Observed(placement=llmserver_api.llmserver.Placement.model_validate(PLACED), placement_ready=True),
                  previous)
    assert "adapters" not in out  # the merge patch leaves the agent's list as it is
    assert not status.changed({**out, "adapters": agents}, out)


def test_on_no_mac_the_operator_says_no_replica_serves_them() -> None:
    previous = {"adapters": [{"name": "sql", "phase": "Ready", "readyReplicas": 1, "message": "served"}]}
    out = compute(status.Observed(placement_problem="no AppleNode fits"), previous)
    assert out["adapters"] == [{"name": n, "phase": "Pending", "readyReplicas": 0, "message": "waiting for an AppleNode"}
                               for n in ("sql", "chat")]
    assert "adapters" not in compute(status.Observed(), None, adapters=[])


class EndedRuntime:
    """A runtime's output after it exited (what ManagedProcess.tail returns)."""

    def __init__(self, output: str) -> None:
        self.output = output

    def tail(self, lines: int = 5) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def test_a_runtime_that_refused_an_adapter_is_failed_with_its_own_reason() -> None:
    from llmserver_cli.hosting import steps

    reason = ("CRITICAL llmserver.runtime: loading model t (mlx backend) failed: UnsupportedRequest: "
              "/m/loras/empty holds no adapter_config.json: not a LoRA adapter")
    output = "\n".join([reason, "INFO: Shutting down", "INFO: Application shutdown complete.",
                        "INFO: Finished server process [1]", "CRITICAL llmserver.runtime: exiting: model t could not be loaded"])
    assert steps.last_words(EndedRuntime(output)) == reason  # type: ignore[arg-type]
    assert steps.last_words(EndedRuntime("a\nb\nc\nd")) == "b\nc\nd"  # type: ignore[arg-type]
