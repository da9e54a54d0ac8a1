"""Placement of mlx / mlx-vlm servers on Macs: fit by memory, labels, ties, stickiness, nothing fits."""

from __future__ import annotations

import pytest

import llmserver_api
from llmserver_operator.apple import placement

GiB = 2**30


def mac(name: str, memory_gib: int = 32, allocated_gib: float = 0, ready: bool = True, labels=None,
        backends=("mlx", "mlx-vlm"), unschedulable: bool = False) -> placement.Candidate:
    return placement.Candidate(
        name=name, ready=ready, unschedulable=unschedulable, labels=labels or {}, backends=backends,
        memory_bytes=memory_gib * GiB, reserved_bytes=4 * GiB, allocated_bytes=int(allocated_gib * GiB),
    )


def test_most_free_memory_wins():
    decision = placement.place([mac("a", 32), mac("b", 64), mac("c", 16)], "mlx", {}, 8 * GiB)
    assert decision.node == "b"
    assert "most free memory" in decision.reason


def test_allocations_reduce_free_memory():
    decision = placement.place([mac("a", 64, allocated_gib=50), mac("b", 32)], "mlx", {}, 8 * GiB)
    assert decision.node == "b"


def test_ties_break_by_name_deterministically():
    nodes = [mac("zeta", 32), mac("alpha", 32), mac("mid", 32)]
    assert placement.place(nodes, "mlx", {}, GiB).node == "alpha"
    assert placement.place(list(reversed(nodes)), "mlx", {}, GiB).node == "alpha"


def test_selector_labels_must_match():
    nodes = [mac("a", 64), mac("b", 32, labels={"room": "lab", "chip": "m2"})]
    assert placement.place(nodes, "mlx", {"room": "lab"}, GiB).node == "b"
    refused = placement.place(nodes, "mlx", {"room": "attic"}, GiB)
    assert refused.node is None
    assert "lacks labels room=attic" in refused.reason


def test_current_node_is_kept_while_it_fits():
    nodes = [mac("a", 16), mac("b", 128)]
    assert placement.place(nodes, "mlx", {}, GiB, current="a").node == "a"


def test_current_node_left_when_not_ready():
    nodes = [mac("a", 128, ready=False), mac("b", 16)]
    decision = placement.place(nodes, "mlx", {}, GiB, current="a")
    assert decision.node == "b"


def test_nothing_fits_says_why_for_every_node():
    nodes = [
        mac("small", 8),
        mac("down", 128, ready=False),
        mac("cordoned", 128, unschedulable=True),
        mac("textonly", 128, backends=("mlx",)),
    ]
    decision = placement.place(nodes, "mlx-vlm", {}, 16 * GiB)
    assert decision.node is None
    for expected in ("small: has 4.0GiB free, needs 16.0GiB", "down: not Ready", "cordoned: unschedulable",
                     "textonly: does not run mlx-vlm"):
        assert expected in decision.reason


def test_no_nodes_registered():
    decision = placement.place([], "mlx", {}, GiB)
    assert decision.node is None and "llmserver agent" in decision.reason


def test_candidate_reads_an_applenode():
    node = llmserver_api.AppleNode.model_validate({
        "metadata": {"name": "studio", "labels": {"room": "lab"}},
        "spec": {"address": "10.0.0.5", "unifiedMemory": "64Gi", "reservedMemory": "8Gi", "chip": "M2 Ultra"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    })
    cand = placement.candidate(node, allocated_bytes=2 * GiB)
    assert cand.ready and cand.name == "studio"
    assert cand.free_bytes == (64 - 8 - 2) * GiB


@pytest.mark.parametrize("max_kv", [None, 32768])
def test_memory_estimate_counts_weights_and_kv_cache(max_kv):
    config = {"num_hidden_layers": 24, "hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2}
    files = {"model.safetensors": 1_000_000_000, "tokenizer.json": 7_000_000, "README.md": 10}
    estimate = placement.estimate_memory_bytes(files, config, max_kv)
    kv = 2 * 24 * 2 * 64 * (max_kv or 4096) * 2
    assert estimate == int(1_000_000_000 * 1.1) + kv + 256 * 2**20
