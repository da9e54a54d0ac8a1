"""Local mode's side of spec.autoscaling: what it writes in the gateway's static config for an
autoscaled model in each state (hold bounds, fallback, wakeUrl; off after `unload-model`), the
control endpoint's `/wakeup/{name}` that starts a load without waiting, and a cold model in the
state file. tests/integration/local/test_up_autoscaling.py runs it end to end."""

from __future__ import annotations

import pathlib
from typing import Any

import aiohttp
import rich.console
import yaml

import llmserver_api
from llmserver_cli.hosting import engine, hosted, settings
from llmserver_cli.local import control, display, gateway_config, routing, state

CONTROL = "http://127.0.0.1:7000"
AUTOSCALING = {"minReplicas": 0, "maxReplicas": 3, "holdSeconds": 20, "maxHeldRequests": 4, "fallback": "small"}


def unit(autoscaling: dict[str, Any] | None = AUTOSCALING) -> hosted.Hosted:
    spec: dict[str, Any] = {"model": "tiny", "backend": "llama-cpp",
                            "source": {"pvc": {"claimName": "/m", "path": "t.gguf"}}}
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    server = llmserver_api.LLMServer.model_validate({"metadata": {"name": "s"}, "spec": spec})
    return hosted.Hosted(key="s", server=server, origin=pathlib.Path("/m/servers.yaml"), changed=lambda: None)


HOLD = gateway_config.Hold(20, 4, "small")


def test_a_ready_autoscaled_model_is_routed_to_its_runtime_with_hold_and_wake_url() -> None:
    u = unit()
    u.phase, u.port = "Ready", 18081
    route = routing.route(u, CONTROL)
    runtime = gateway_config.Endpoint("http://127.0.0.1:18081", True)
    wake_url = f"{CONTROL}/wakeup/s"
    assert route == gateway_config.Route("tiny", "LeastOutstanding", (runtime,), hold=HOLD, wake_url=wake_url)


def test_a_cold_loading_or_draining_model_has_no_endpoint_and_is_held() -> None:
    for phase, wakeable in (("Unloaded", True), ("Pending", False), ("Starting", False), ("Unloading", True)):
        u = unit()
        u.phase, u.wakeable, u.port = phase, wakeable, 18081
        route = routing.route(u, CONTROL)
        assert (route.endpoints, route.hold, route.wake_url) == ((), HOLD, f"{CONTROL}/wakeup/s"), phase


def test_a_failed_model_is_not_held_but_its_fallback_still_answers() -> None:
    u = unit()
    u.phase = "Failed"
    assert routing.route(u, CONTROL).hold == gateway_config.Hold(0, 4, "small")


def test_a_model_unloaded_by_hand_is_off_like_any_unloaded_model() -> None:
    u = unit()
    u.phase, u.wakeable = "Unloaded", False
    assert routing.route(u, CONTROL) == gateway_config.Route("tiny", "LeastOutstanding")


def test_without_autoscaling_the_wake_up_proxy_stays() -> None:
    u = unit(None)
    u.phase, u.wakeable = "Unloaded", True
    route = routing.route(u, CONTROL)
    assert route.hold is None and route.wake_url is None
    assert route.endpoints == (gateway_config.Endpoint(f"{CONTROL}/wake/s", True),)


def test_the_static_config_carries_the_block_and_the_wake_url() -> None:
    held = gateway_config.Route("tiny", endpoints=(), hold=HOLD, wake_url=f"{CONTROL}/wakeup/s")
    plain = gateway_config.Route("other", hold=gateway_config.Hold(0, 100))
    assert gateway_config.build([held, plain])["models"] == [
        {"name": "other", "policy": "LeastOutstanding", "endpoints": [],
         "autoscaling": {"holdSeconds": 0, "maxHeldRequests": 100}},
        {"name": "tiny", "policy": "LeastOutstanding", "endpoints": [],
         "autoscaling": {"holdSeconds": 20, "maxHeldRequests": 4, "fallback": "small"},
         "wakeUrl": f"{CONTROL}/wakeup/s"},
    ]  # fmt: skip


def test_a_cold_model_shows_as_cold_in_the_state_file() -> None:
    u = unit()
    u.phase, u.wakeable = "Unloaded", True
    row = state.server_state(u)
    assert row.cold and (row.min_replicas, row.max_replicas) == (0, 3)
    u.wakeable = False  # unloaded by hand: off, not cold
    assert not state.server_state(u).cold
    assert not state.server_state(unit(None)).cold


class _Supervisor:
    """What the control app reads of a supervisor."""

    def __init__(self, the_engine: engine.Engine) -> None:
        self.engine = the_engine
        self.token = "t"


async def test_wakeup_starts_the_load_and_answers_at_once(tmp_path: pathlib.Path) -> None:
    config = settings.EngineSettings(python="/py", cache_dir=tmp_path, log_dir=tmp_path, env={}, wake_on_request=True)
    the_engine = engine.Engine(config, lambda: None)
    launched: list[str] = []
    the_engine.launch = lambda u: launched.append(u.key)  # type: ignore[method-assign]
    cold, off = unit(), unit()
    cold.phase, cold.wakeable = "Unloaded", True
    off.key, off.phase = "off", "Unloaded"
    the_engine.units = {"s": cold, "off": off}
    async with aiohttp.ClientSession() as http:
        runner, url = await control.start(_Supervisor(the_engine), http)  # type: ignore[arg-type]
        try:
            async with http.post(f"{url}/wakeup/s") as response:
                assert response.status == 202 and launched == ["s"]
            async with http.post(f"{url}/wakeup/off") as response:
                assert response.status == 409 and launched == ["s"]
                assert (await response.json())["error"]["code"] == "model_not_ready"
            async with http.post(f"{url}/wakeup/nope") as response:
                assert response.status == 404
        finally:
            await runner.cleanup()


def test_the_gateway_reads_what_local_mode_writes_for_an_autoscaled_model() -> None:
    """The gateway's own parser (not imported by the CLI; the test may) takes the block and the wakeUrl."""
    from llmserver_gateway import config as gateway_parser

    cold = unit()
    cold.phase, cold.wakeable = "Unloaded", True
    helper = unit(None)
    helper.server = helper.server.model_copy(update={"spec": helper.server.spec.model_copy(update={"model": "small"})})
    helper.phase, helper.port = "Ready", 18082
    config = gateway_config.build(routing.routes([cold, helper], CONTROL))
    routes, _ = gateway_parser.parse(yaml.safe_dump(config), {})
    parsed = {route.model: route for route in routes}
    elastic = parsed["tiny"].elastic
    assert elastic is not None and not parsed["tiny"].endpoints
    assert (elastic.hold_seconds, elastic.max_held_requests, elastic.fallback, elastic.wake_url) == (
        20, 4, "small", f"{CONTROL}/wakeup/s")


def test_the_live_table_shows_a_cold_model_as_cold() -> None:
    cold = unit()
    cold.phase, cold.wakeable = "Unloaded", True
    snapshot = state.LocalState(pid=1, gateway_url="http://127.0.0.1:8000", servers=[state.server_state(cold)])
    console = rich.console.Console(width=200, record=True)
    console.print(display.table(snapshot))
    assert "Cold" in console.export_text() and "Unloaded" not in console.export_text()
