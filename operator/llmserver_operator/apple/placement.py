"""Chooses the Mac (AppleNode) that serves an mlx / mlx-vlm LLMServer. Pure: no API, no clock.

A Mac fits when it is Ready, schedulable, runs the backend, carries the selector's labels and has
enough unified memory left after its reserve and what is already promised to other servers.
Among fitting Macs the current one wins (no needless moves); otherwise the one with most memory
left, ties broken by name so every operator replica decides the same.
"""

from __future__ import annotations

import dataclasses

import llmserver_api


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What placement needs to know about one AppleNode."""

    name: str
    ready: bool
    unschedulable: bool
    labels: dict[str, str]
    backends: tuple[str, ...]
    memory_bytes: int
    reserved_bytes: int
    allocated_bytes: int  # promised to other servers (not the one being placed)

    @property
    def free_bytes(self) -> int:
        return self.memory_bytes - self.reserved_bytes - self.allocated_bytes


@dataclasses.dataclass(frozen=True)
class Decision:
    """The chosen node, or None with a reason naming why each node was refused."""

    node: str | None
    reason: str


def candidate(node: llmserver_api.AppleNode, allocated_bytes: int) -> Candidate:
    """Reads a Candidate out of an AppleNode object."""
    conditions = node.status.conditions if node.status else []
    ready = any(c.type == "Ready" and c.status == llmserver_api.ConditionStatus.TRUE for c in conditions)
    return Candidate(
        name=node.metadata.name or "",
        ready=ready,
        unschedulable=node.spec.unschedulable,
        labels=dict(node.metadata.labels),
        backends=tuple(node.spec.backends),
        memory_bytes=int(llmserver_api.parse_quantity(node.spec.unified_memory)),
        reserved_bytes=int(llmserver_api.parse_quantity(node.spec.reserved_memory)),
        allocated_bytes=allocated_bytes,
    )


def _refusal(node: Candidate, backend: str, selector: dict[str, str], required_bytes: int) -> str | None:
    if not node.ready:
        return "not Ready (no recent heartbeat)"
    if node.unschedulable:
        return "unschedulable"
    if backend not in node.backends:
        return f"does not run {backend}"
    missing = [f"{k}={v}" for k, v in sorted(selector.items()) if node.labels.get(k) != v]
    if missing:
        return "lacks labels " + ", ".join(missing)
    if node.free_bytes < required_bytes:
        return f"has {_gib(node.free_bytes)} free, needs {_gib(required_bytes)}"
    return None


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f}GiB"


def place(
    nodes: list[Candidate],
    backend: str,
    selector: dict[str, str],
    required_bytes: int,
    current: str | None = None,
) -> Decision:
    """Picks a node for a model needing `required_bytes`, keeping `current` when it still fits."""
    if not nodes:
        return Decision(None, "no AppleNode is registered; start `llmserver agent` on a Mac")
    refusals: dict[str, str] = {}
    fitting: list[Candidate] = []
    for node in sorted(nodes, key=lambda n: n.name):
        refusal = _refusal(node, backend, selector, required_bytes)
        if refusal is None:
            fitting.append(node)
        else:
            refusals[node.name] = refusal
    if not fitting:
        detail = "; ".join(f"{name}: {why}" for name, why in refusals.items())
        return Decision(None, f"no AppleNode fits ({detail})")
    for node in fitting:
        if node.name == current:
            return Decision(node.name, f"stays on {node.name} ({_gib(node.free_bytes)} free)")
    best = min(fitting, key=lambda n: (-n.free_bytes, n.name))
    return Decision(best.name, f"placed on {best.name}: most free memory ({_gib(best.free_bytes)}) among {len(fitting)} fitting")


_WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".npz", ".pt", ".pth")


def estimate_memory_bytes(
    file_sizes: dict[str, int], config: dict | None = None, max_kv_size: int | None = None
) -> int:
    """Unified memory a model needs: weights, 10% engine overhead, KV cache, a fixed runtime base.

    The KV term uses the config's layers and KV heads when present (fp16 keys and values for
    `max_kv_size` tokens, default 4096), so long-context settings reserve what they will use.
    """
    weights = sum(size for name, size in file_sizes.items() if name.endswith(_WEIGHT_SUFFIXES))
    text_config = (config or {}).get("text_config", config or {})
    layers = int(text_config.get("num_hidden_layers", 0) or 0)
    hidden = int(text_config.get("hidden_size", 0) or 0)
    heads = int(text_config.get("num_attention_heads", 1) or 1)
    kv_heads = int(text_config.get("num_key_value_heads", heads) or heads)
    head_dim = int(text_config.get("head_dim", hidden // heads if heads else 0) or 0)
    kv_cache = 2 * layers * kv_heads * head_dim * (max_kv_size or 4096) * 2
    return int(weights * 1.1) + kv_cache + 256 * 2**20
