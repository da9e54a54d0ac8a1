"""`list-loaded`, `unload-model` and `load-model` with spec.autoscaling: a model the autoscaler
left at zero shows as Cold with its bounds; unloading takes the block out of the autoscaler's way
(kept in an annotation) and loading puts it back with replicas inside its bounds."""

from __future__ import annotations

import json
from typing import Any

from llmserver_cli.commands import list_loaded, scaling
from llmserver_cli.local import state

BLOCK = {"minReplicas": 0, "maxReplicas": 3, "fallback": "small"}


def _obj(
    replicas: int, autoscaling: dict[str, Any] | None = BLOCK, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": "tiny", "replicas": replicas}
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    return {"metadata": {"name": "tiny", "namespace": "ml", "annotations": annotations or {}}, "spec": spec,
            "status": {"phase": "Unloaded" if replicas == 0 else "Ready", "readyReplicas": min(replicas, 1)}}


def _apply(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch, as the API server applies it."""
    out = dict(obj)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _apply(out[key], value)
        else:
            out[key] = value
    return out


def test_a_model_at_zero_with_autoscaling_is_cold_with_its_bounds() -> None:
    cold = list_loaded.cluster_row(_obj(0))
    assert (cold.phase, cold.ready, cold.autoscaling) == ("Cold", "0/0", "0..3")
    warm = list_loaded.cluster_row(_obj(2))
    assert (warm.phase, warm.autoscaling) == ("Ready", "0..3")
    off = list_loaded.cluster_row(_obj(0, autoscaling=None))
    assert (off.phase, off.autoscaling) == ("Unloaded", "")


def test_local_cold_rows() -> None:
    current = state.LocalState(pid=1, gateway_url="http://127.0.0.1:8000")
    server = state.ServerState(name="tiny", model="tiny", mode="SelfHosted", backend="llama-cpp", phase="Unloaded",
                               min_replicas=0, max_replicas=2, wakeable=True)  # fmt: skip
    row = list_loaded.local_row(current, server)
    assert (row.phase, row.ready, row.autoscaling) == ("Cold", "0/0", "0..2")
    server.wakeable = False
    assert list_loaded.local_row(current, server).phase == "Unloaded"


def test_unload_takes_autoscaling_out_of_the_way_and_load_restores_it() -> None:
    obj = _obj(2)
    unloaded = _apply(obj, scaling.unload_patch(obj) or {})
    assert unloaded["spec"]["replicas"] == 0 and "autoscaling" not in unloaded["spec"]
    annotations = unloaded["metadata"]["annotations"]
    assert annotations[scaling.ANNOTATION] == "2" and json.loads(annotations[scaling.AUTOSCALING_ANNOTATION]) == BLOCK
    assert scaling.unload_patch(unloaded) is None  # already unloaded
    loaded = _apply(unloaded, scaling.load_patch(unloaded) or {})
    assert loaded["spec"] == obj["spec"] and loaded["metadata"]["annotations"] == {}
    assert scaling.load_patch(loaded) is None


def test_a_cold_model_is_unloaded_too_and_loading_warms_it_within_bounds() -> None:
    cold = _obj(0, {"minReplicas": 0, "maxReplicas": 3})
    unloaded = _apply(cold, scaling.unload_patch(cold) or {})
    assert "autoscaling" not in unloaded["spec"]  # else the autoscaler would wake it on the next request
    assert _apply(unloaded, scaling.load_patch(unloaded) or {})["spec"]["replicas"] == 1
    assert _apply(cold, scaling.load_patch(cold) or {})["spec"]["replicas"] == 1  # load-model on a cold one
    busy = _obj(5, {"minReplicas": 2, "maxReplicas": 4})
    unloaded = _apply(busy, scaling.unload_patch(busy) or {})
    unloaded["metadata"]["annotations"][scaling.ANNOTATION] = "9"  # more than maxReplicas now
    assert _apply(unloaded, scaling.load_patch(unloaded) or {})["spec"]["replicas"] == 4
