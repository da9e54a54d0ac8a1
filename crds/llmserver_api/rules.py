"""Cross-field rules, written once: each rule is a CEL expression for the CRD's
`x-kubernetes-validations` and a Python predicate with the same meaning for the pydantic models.

Both see the object as the API server does when it evaluates CEL: camelCase keys with schema
defaults applied. Tests evaluate the CEL text offline and check it agrees with the predicate.
"""

from __future__ import annotations

import dataclasses
import functools
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
        message="spec.source (huggingFace, pvc, s3 or url) is required when spec.mode is SelfHosted",
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
    Rule(
        name="autoscaling-selfhosted-only",
        cel="self.mode != 'Proxy' || !has(self.autoscaling)",
        message="spec.autoscaling must not be set when spec.mode is Proxy (no replicas run)",
        field_path=".autoscaling",
        holds=lambda spec: spec.get("mode") != "Proxy" or "autoscaling" not in spec,
    ),
    Rule(
        name="fallback-is-another-model",
        cel="!has(self.autoscaling) || !has(self.autoscaling.fallback) || self.autoscaling.fallback != self.model",
        message="spec.autoscaling.fallback must name another model than spec.model",
        field_path=".autoscaling.fallback",
        holds=lambda spec: (spec.get("autoscaling") or {}).get("fallback") in (None, "")
        or spec["autoscaling"]["fallback"] != spec.get("model"),
    ),
    Rule(
        name="adapters-selfhosted-only",
        cel="self.mode != 'Proxy' || !has(self.adapters) || size(self.adapters) == 0",
        message="spec.adapters must be empty when spec.mode is Proxy (the provider hosts the model)",
        field_path=".adapters",
        holds=lambda spec: spec.get("mode") != "Proxy" or not spec.get("adapters"),
    ),
    Rule(
        name="adapter-names-unique",
        cel="!has(self.adapters) || self.adapters.all(a, self.adapters.exists_one(b, b.name == a.name))",
        message="spec.adapters names an adapter twice: each spec.adapters[].name must be unique",
        field_path=".adapters",
        holds=lambda spec: len({a.get("name") for a in spec.get("adapters") or ()}) == len(spec.get("adapters") or ()),
    ),
    Rule(
        name="adapters-not-on-mlx-vlm",
        cel="self.backend != 'mlx-vlm' || !has(self.adapters) || size(self.adapters) == 0",
        message="spec.adapters: the mlx-vlm backend cannot load LoRA adapters (mlx, llama-cpp, vllm and "
        "transformers can)",
        field_path=".adapters",
        holds=lambda spec: spec.get("backend") != "mlx-vlm" or not spec.get("adapters"),
    ),
    _config_rule("llamaCpp", "llama-cpp"),
    _config_rule("vllm", "vllm"),
    _config_rule("transformers", "transformers"),
    _config_rule("mlx", "mlx"),
    _config_rule("mlxVlm", "mlx-vlm"),
)

SOURCE_KINDS = ("huggingFace", "pvc", "s3", "url")

SOURCE_RULES: tuple[Rule, ...] = (
    Rule(
        name="source-exactly-one",
        cel=" + ".join(f"(has(self.{kind}) ? 1 : 0)" for kind in SOURCE_KINDS) + " == 1",
        message="exactly one of spec.source.huggingFace, spec.source.pvc, spec.source.s3 and spec.source.url must be set",
        field_path="",
        holds=lambda source: sum(kind in source for kind in SOURCE_KINDS) == 1,
    ),
)

AUTOSCALING_RULES: tuple[Rule, ...] = (
    Rule(
        name="autoscaling-min-within-max",
        cel="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
        message="spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas",
        field_path=".minReplicas",
        holds=lambda block: block.get("minReplicas", 1) <= block.get("maxReplicas", 1),
    ),
)

S3_RULES: tuple[Rule, ...] = (
    Rule(
        name="s3-key-or-prefix",
        cel="has(self.key) != has(self.prefix)",
        message="exactly one of spec.source.s3.key and spec.source.s3.prefix must be set",
        field_path="",
        holds=lambda s3: ("key" in s3) != ("prefix" in s3),
    ),
)

# Whitespace the engines' own argument parsing strips around a key, spelled out so that RE2 (the
# API server's CEL) and Python's re read the class the same way.
_WS = r"[ \t\n\f\r]"


def _cel_string(text: str) -> str:
    """`text` as a single-quoted CEL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _key(name: str) -> str:
    """Matches an engine argument that sets `name` in any form the engines read: `--n-ctx`,
    `--n_ctx=4`, `n_ctx=4` (vLLM's parser takes `_` for `-`; key=value engines strip the dashes)."""
    return f"^{_WS}*-*{'[-_]'.join(name.split('_'))}{_WS}*(=|$)"


def _abbreviations(option: str) -> str:
    """`--trust-remote-code` and every abbreviation argparse (vLLM) accepts for it, from `--tr`."""
    letters = option[2:].replace("-", "_")
    tail = ""
    for letter in reversed(letters[2:]):
        tail = f"({'[-_]' if letter == '_' else letter}{tail})?"
    return f"^{_WS}*--{letters[:2]}{tail}{_WS}*(=|$)"


# What turns a model repository's own code on: the flag in any spelling or abbreviation, the key
# anywhere in an argument (also inside a JSON value) except as `--no-trust-remote-code`, or a vLLM
# `--config` file that could set it.
REMOTE_CODE_ARG = "|".join(
    (
        _abbreviations("--trust-remote-code"),
        "(^|[^-o])-*trust[-_]?remote[-_]?code",
        f"^{_WS}*--config{_WS}*(=|$)",
    )
)


def _sets(spec: Wire, pattern: str) -> bool:
    return any(re.search(pattern, arg) for arg in spec.get("extraArgs") or ())


def _extra_args_rule(name: str, pattern: str, message: str, backends: tuple[str, ...] | None = None) -> Rule:
    """spec.extraArgs must not match `pattern` (for `backends` only, when given)."""
    applies = "" if backends is None else f"!(self.backend in [{', '.join(_cel_string(b) for b in backends)}]) || "
    return Rule(
        name=name,
        cel=f"!has(self.extraArgs) || {applies}!self.extraArgs.exists(a, a.matches({_cel_string(pattern)}))",
        message=message,
        field_path=".extraArgs",
        holds=lambda spec: (backends is not None and spec.get("backend") not in backends) or not _sets(spec, pattern),
    )


# vLLM's short spellings of flags a typed field owns (its argparse aliases).
_VLLM_ALIASES = {"tensor_parallel_size": ("-tp",)}

# Arguments of `llmserver-runtime serve` that the operator (or the agent) sets from the spec.
_SERVE_OWNED = (
    ("model", "spec.source sets the model's path"),
    ("model_path", "spec.source sets the model's path"),
    ("served_model_name", "spec.model sets the served name"),
    ("host", "the operator and the Mac agent choose the address"),
    ("port", "the operator and the Mac agent choose the port"),
)


def _remote_code_rule() -> Rule:
    pattern = REMOTE_CODE_ARG
    return Rule(
        name="extra-args-no-remote-code",
        cel=(
            "(has(self.trustRemoteCode) && self.trustRemoteCode) || !has(self.extraArgs) || "
            f"!self.extraArgs.exists(a, a.matches({_cel_string(pattern)}))"
        ),
        message=(
            "spec.extraArgs must not enable remote code (--trust-remote-code, trust_remote_code=..., a vLLM "
            "--config file): set spec.trustRemoteCode: true to let the model repository run its own code"
        ),
        field_path=".extraArgs",
        holds=lambda spec: spec.get("trustRemoteCode") is True or not _sets(spec, pattern),
    )


@functools.cache
def extra_args_rules() -> tuple[Rule, ...]:
    """The spec.extraArgs rules: no remote code without spec.trustRemoteCode, and no argument that a
    typed field owns. The owned engine flags are derived from `engine_flags.EngineFlags`; it is
    imported here, not at the top, because it reads the LLMServer model, which imports this module."""
    from llmserver_api import engine_flags, llmserver  # noqa: PLC0415 - import cycle, see docstring

    found = [_remote_code_rule()]
    for name, use in _SERVE_OWNED:
        option = "--" + name.replace("_", "-")
        found.append(_extra_args_rule(f"extra-args-not-{option[2:]}", _key(name),
                                      f"spec.extraArgs must not set {option} ({name}): {use}"))  # fmt: skip
    spec_fields = llmserver.LLMServerSpec.model_fields
    for flag in engine_flags.flags():
        if flag.crd_field is None:
            continue
        fields = []
        for engine in flag.engines:
            block = spec_fields[engine_flags.config_attr(engine)].alias
            fields.append(f"spec.{block}.{engine_flags.config_class(engine).model_fields[flag.crd_field].alias}")
        backends = (*(engine.value for engine in flag.engines), llmserver.Backend.AUTO.value)
        message = (
            f"spec.extraArgs must not set {flag.option} ({flag.name}) for backend {' or '.join(backends)}: "
            f"use {' or '.join(fields)}"
        )
        pattern = _key(flag.name)
        if llmserver.Backend.VLLM in flag.engines:  # vLLM's argparse also takes abbreviations and short aliases
            pattern = "|".join((pattern, _abbreviations(flag.option), *(
                f"^{_WS}*{alias}{_WS}*(=|$)" for alias in _VLLM_ALIASES.get(flag.name, ()))))
        found.append(_extra_args_rule(f"extra-args-not-{flag.option[2:]}", pattern, message, backends))
    return tuple(found)


def spec_rules() -> tuple[Rule, ...]:
    """Every rule attached to spec: SPEC_RULES and the extraArgs rules."""
    return SPEC_RULES + extra_args_rules()


TRANSFORMERS_RULES: tuple[Rule, ...] = (
    Rule(
        name="quantization-exclusive",
        cel="!(has(self.loadIn4bit) && has(self.loadIn8bit) && self.loadIn4bit && self.loadIn8bit)",
        message="spec.transformers.loadIn4bit and spec.transformers.loadIn8bit are mutually exclusive",
        field_path=".loadIn8bit",
        holds=lambda cfg: not (cfg.get("loadIn4bit") and cfg.get("loadIn8bit")),
    ),
)

# The longest LLMServer name whose children's names still fit 63 characters ("-download-" + 8 hex).
MAX_NAME = 63 - len("-download-") - 8
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
    Rule(
        name="name-fits-children",
        cel=f"self.metadata.name.size() <= {MAX_NAME}",
        message=(
            f"metadata.name must be at most {MAX_NAME} characters: the download Job is named "
            "'<name>-download-<8 hex>' and Kubernetes limits it to 63"
        ),
        field_path="",
        holds=lambda obj: len(obj.get("metadata", {}).get("name", "")) <= MAX_NAME,
    ),
)


def _is_dns_label(name: str) -> bool:
    return len(name) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) is not None


def broken(rules: tuple[Rule, ...], wire: Wire) -> list[Rule]:
    """The rules that `wire` violates, in declaration order."""
    return [rule for rule in rules if not rule.holds(wire)]


def enforce(rule_set: tuple[Rule, ...], wire: Wire) -> None:
    """Raises one ValueError whose text names the field of every broken rule."""
    failed = broken(rule_set, wire)
    if failed:
        raise ValueError("; ".join(rule.message for rule in failed))
