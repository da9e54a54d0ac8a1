"""Cross-field rules, written once: each rule is a CEL expression for the CRD's
`x-kubernetes-validations` and a Python predicate with the same meaning for the pydantic models.

Both see the object as the API server does when it evaluates CEL: camelCase keys with schema
defaults applied. Tests evaluate the CEL text offline and check it agrees with the predicate.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

Wire = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One cross-field rule; `field_path` is relative to the object the rule is attached to."""

    name: str
    cel: str
    message: str
    field_path: str
    holds: Callable[[Wire], bool]

    def to_validation(self) -> dict[str, str]:
        """The rule as one entry of `x-kubernetes-validations`."""
        validation = {"rule": self.cel, "message": self.message}
        if self.field_path:
            validation["fieldPath"] = self.field_path
        return validation


def _gpus(spec: Wire) -> int:
    return int(spec.get("resources", {}).get("gpus", 0) or 0)


def _config_rule(block: str, backend: str) -> Rule:
    return Rule(
        name=f"{block}-needs-backend-{backend}",
        cel=f"!has(self.{block}) || self.backend in ['{backend}', 'auto']",
        message=f"spec.{block} is set but spec.backend is neither {backend} nor auto",
        field_path=f".{block}",
        holds=lambda spec: block not in spec or spec.get("backend") in (backend, "auto"),
    )


_GPUS_ZERO = "!has(self.resources) || !has(self.resources.gpus) || self.resources.gpus == 0"

SPEC_RULES: tuple[Rule, ...] = (
    Rule(
        name="proxy-requires-proxy-block",
        cel="self.mode != 'Proxy' || has(self.proxy)",
        message="spec.proxy (url, upstreamModel, apiKeySecretRef) is required when spec.mode is Proxy",
        field_path=".proxy",
        holds=lambda spec: spec.get("mode") != "Proxy" or "proxy" in spec,
    ),
    Rule(
        name="proxy-forbids-source",
        cel="self.mode != 'Proxy' || !has(self.source)",
        message="spec.source must not be set when spec.mode is Proxy (the provider hosts the model)",
        field_path=".source",
        holds=lambda spec: spec.get("mode") != "Proxy" or "source" not in spec,
    ),
    Rule(
        name="selfhosted-requires-source",
        cel="self.mode != 'SelfHosted' || has(self.source)",
        message="spec.source (huggingFace or pvc) is required when spec.mode is SelfHosted",
        field_path=".source",
        holds=lambda spec: spec.get("mode") != "SelfHosted" or "source" in spec,
    ),
    Rule(
        name="selfhosted-forbids-proxy",
        cel="self.mode != 'SelfHosted' || !has(self.proxy)",
        message="spec.proxy must not be set when spec.mode is SelfHosted",
        field_path=".proxy",
        holds=lambda spec: spec.get("mode") != "SelfHosted" or "proxy" not in spec,
    ),
    Rule(
        name="proxy-requests-no-gpus",
        cel=f"self.mode != 'Proxy' || {_GPUS_ZERO}",
        message="spec.resources.gpus must be 0 when spec.mode is Proxy (no pods run)",
        field_path=".resources.gpus",
        holds=lambda spec: spec.get("mode") != "Proxy" or _gpus(spec) == 0,
    ),
    Rule(
        name="mlx-requests-no-gpus",
        cel=f"!(self.backend in ['mlx', 'mlx-vlm']) || {_GPUS_ZERO}",
        message="spec.resources.gpus must be 0 for the mlx and mlx-vlm backends (they run on Macs)",
        field_path=".resources.gpus",
        holds=lambda spec: spec.get("backend") not in ("mlx", "mlx-vlm") or _gpus(spec) == 0,
    ),
    Rule(
        name="tensor-parallel-within-gpus",
        cel=(
            "!has(self.vllm) || !has(self.vllm.tensorParallelSize) || "
            f"{_GPUS_ZERO} || self.vllm.tensorParallelSize <= self.resources.gpus"
        ),
        message="spec.vllm.tensorParallelSize must not exceed spec.resources.gpus",
        field_path=".vllm.tensorParallelSize",
        holds=lambda spec: (
            "tensorParallelSize" not in spec.get("vllm", {})
            or _gpus(spec) == 0
            or spec["vllm"]["tensorParallelSize"] <= _gpus(spec)
        ),
    ),
    Rule(
        name="apple-placement-needs-mlx",
        cel="!has(self.apple) || self.backend in ['mlx', 'mlx-vlm', 'auto']",
        message="spec.apple (placement on a Mac) needs spec.backend mlx, mlx-vlm or auto",
        field_path=".apple",
        holds=lambda spec: "apple" not in spec or spec.get("backend") in ("mlx", "mlx-vlm", "auto"),
    ),
    Rule(
        name="vllm-serves-generation-only",
        cel="self.backend != 'vllm' || !has(self.capabilities) || self.capabilities.all(c, c in ['TextGeneration', 'Vision'])",
        message=(
            "spec.capabilities: the vllm backend serves TextGeneration and Vision only; Embeddings and Rerank "
            "need spec.backend transformers (GPUs work too) or llama-cpp for GGUF files"
        ),
        field_path=".capabilities",
        holds=lambda spec: spec.get("backend") != "vllm"
        or all(c in ("TextGeneration", "Vision") for c in spec.get("capabilities") or ()),
    ),
    _config_rule("llamaCpp", "llama-cpp"),
    _config_rule("vllm", "vllm"),
    _config_rule("transformers", "transformers"),
    _config_rule("mlx", "mlx"),
    _config_rule("mlxVlm", "mlx-vlm"),
)

SOURCE_RULES: tuple[Rule, ...] = (
    Rule(
        name="source-exactly-one",
        cel="has(self.huggingFace) != has(self.pvc)",
        message="exactly one of spec.source.huggingFace and spec.source.pvc must be set",
        field_path="",
        holds=lambda source: ("huggingFace" in source) != ("pvc" in source),
    ),
)

TRANSFORMERS_RULES: tuple[Rule, ...] = (
    Rule(
        name="quantization-exclusive",
        cel="!(has(self.loadIn4bit) && has(self.loadIn8bit) && self.loadIn4bit && self.loadIn8bit)",
        message="spec.transformers.loadIn4bit and spec.transformers.loadIn8bit are mutually exclusive",
        field_path=".loadIn8bit",
        holds=lambda cfg: not (cfg.get("loadIn4bit") and cfg.get("loadIn8bit")),
    ),
)

ROOT_RULES: tuple[Rule, ...] = (
    Rule(
        name="name-is-dns-label",
        cel="self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        message=(
            "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a "
            "letter, at most 63 characters): it names the Service and Deployment"
        ),
        field_path="",
        holds=lambda obj: _is_dns_label(obj.get("metadata", {}).get("name", "")),
    ),
)


def _is_dns_label(name: str) -> bool:
    return len(name) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) is not None


def broken(rules: tuple[Rule, ...], wire: Wire) -> list[Rule]:
    """The rules that `wire` violates, in declaration order."""
    return [rule for rule in rules if not rule.holds(wire)]
