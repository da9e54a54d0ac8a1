"""The cross-field rules are written once (llmserver_api.rules) as CEL text and as a Python
predicate. These tests evaluate the CEL text with cel-python on many spec shapes and check it
agrees with the predicate, and that every rule only names fields the generated schema has
(the API server refuses a CRD whose CEL names an unknown field)."""

from __future__ import annotations

import random
import re
from typing import Any

import pydantic
import pytest

from llmserver_api import llmserver, rules, schema
from testkit import crd_validation

MODES = ["SelfHosted", "Proxy"]
BACKENDS = ["llama-cpp", "transformers", "vllm", "mlx", "mlx-vlm", "auto"]
BLOCKS: dict[str, dict[str, Any]] = {
    "llamaCpp": {"nCtx": 2048},
    "vllm": {"maxModelLen": 4096},
    "transformers": {"dtype": "float16"},
    "mlx": {"maxKvSize": 1024},
    "mlxVlm": {"maxTokens": 64},
}
# Engine arguments: harmless ones, ones that turn remote code on, ones a typed field owns, near misses.
HARMLESS_ARGS = ["--enable-prefix-caching", "--max-num-seqs=64", "prefill_step_size=8", "--seed", "7", "--t"]
REMOTE_CODE_ARGS = [
    "--trust-remote-code", "--trust_remote_code", "trust_remote_code=true", "--trust-remote-code=1", "--tr",
    "--trust-rem", " trust-remote-code = True", '--hf-overrides={"trust_remote_code": true}', "--config",
    "--config=/models/engine.yaml", "-trust-remote-code", 'x={"a":1,"trust_remote_code":true}',
]  # fmt: skip
NEAR_MISSES = [
    "--no-trust-remote-code", "--model-impl=vllm", "--n-ctx-train=1", "--hosted", "--portal=1", "max_tokens_x=2",
    "--trusted", "--configure", "--max-model-length=5", "nctx=4", "--no_trust_remote_code",
]  # fmt: skip
OWNED_ARGS = [
    "--model", "--model=/x", "model_path=/x", "--served-model-name=x", "--host=0.0.0.0", "--port", "port=1",
    "--n-gpu-layers=0", "n_gpu_layers=-1", "--n_ctx=4", "n_ctx=4", "n-batch=8", "n_threads = 2",
    "--tensor-parallel-size=2", "--tensor_parallel_size", "--gpu-memory-utilization=0.5", "--max-model-len=9",
    "--dtype=half", "dtype=float16", "load_in_4bit=true", "--load-in-8bit", "max_kv_size=9", "max_tokens=3",
    "--parallel=4", "parallel=8", "max_batch_size=4",
]  # fmt: skip
EXTRA_ARGS = HARMLESS_ARGS + REMOTE_CODE_ARGS + NEAR_MISSES + OWNED_ARGS


def _spec_variants(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """A deterministic sample of spec shapes covering every rule both holding and broken."""
    chooser = random.Random(seed)
    variants = []
    for _ in range(count):
        spec: dict[str, Any] = {"model": "m", "mode": chooser.choice(MODES), "backend": chooser.choice(BACKENDS)}
        gpus = chooser.choice([None, 0, 1, 2, 4])
        if gpus is not None or chooser.random() < 0.3:
            spec["resources"] = {} if gpus is None else {"gpus": gpus}
        if chooser.random() < 0.6:
            hugging_face, pvc = {"repo": "a/b"}, {"claimName": "c"}
            s3 = chooser.choice([{"bucket": "bkt", "key": "m.gguf"}, {"bucket": "bkt", "prefix": "m"},
                                 {"bucket": "bkt"}, {"bucket": "bkt", "key": "m.gguf", "prefix": "m"}])
            url = {"url": "https://mirror.example/m.gguf", "sha256": "a" * 64}
            spec["source"] = chooser.choice(
                [{"huggingFace": hugging_face}, {"pvc": pvc}, {}, {"huggingFace": hugging_face, "pvc": pvc},
                 {"s3": s3}, {"url": url}, {"s3": s3, "url": url}, {"pvc": pvc, "url": url}]
            )
        if chooser.random() < 0.4:
            spec["proxy"] = {"url": "https://p.example/v1"}
        if chooser.random() < 0.3:
            spec["apple"] = {}
        for block in chooser.sample(sorted(BLOCKS), chooser.choice([0, 0, 1, 2])):
            spec[block] = dict(BLOCKS[block])
        if chooser.random() < 0.4:
            spec["capabilities"] = chooser.sample(["TextGeneration", "Embeddings", "Vision", "Rerank"], chooser.randint(1, 2))
        if "vllm" in spec and chooser.random() < 0.7:
            spec["vllm"]["tensorParallelSize"] = chooser.choice([1, 2, 4, 8])
        if "transformers" in spec:
            spec["transformers"].update(
                {key: chooser.choice([True, False]) for key in ("loadIn4bit", "loadIn8bit") if chooser.random() < 0.7}
            )
        if chooser.random() < 0.3:
            spec["extraArgs"] = chooser.sample(EXTRA_ARGS, chooser.randint(0, 2))
        if chooser.random() < 0.3:
            spec["trustRemoteCode"] = chooser.choice([True, False])
        if chooser.random() < 0.3:
            spec["autoscaling"] = {"maxReplicas": chooser.choice([1, 3]), "minReplicas": chooser.choice([0, 2, 4]),
                                   **({"fallback": chooser.choice(["m", "other"])} if chooser.random() < 0.6 else {})}
        if chooser.random() < 0.3:
            names = chooser.choice([["a"], ["a", "b"], ["a", "a"], []])
            spec["adapters"] = [{"name": name, "source": {"pvc": {"claimName": "c"}}} for name in names]
        variants.append(spec)
    return variants


@pytest.fixture(scope="module")
def spec_schema() -> dict[str, Any]:
    return schema.llmserver_schema()["properties"]["spec"]


def _node(root: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for name in path:
        root = root["properties"][name]
    return root


RULE_SETS = [
    ((), rules.SPEC_RULES),
    ((), rules.extra_args_rules()),
    (("source",), rules.SOURCE_RULES),
    (("source", "s3"), rules.S3_RULES),
    (("transformers",), rules.TRANSFORMERS_RULES),
    (("autoscaling",), rules.AUTOSCALING_RULES),
]


def _extra_args_variants() -> list[dict[str, Any]]:
    """Every sample argument alone on every backend; the remote-code ones also with trustRemoteCode."""
    return [
        {"model": "m", "backend": backend, "extraArgs": [arg], "trustRemoteCode": trust}
        for arg in EXTRA_ARGS
        for backend in BACKENDS
        for trust in ((False, True) if arg in REMOTE_CODE_ARGS and backend == "auto" else (False,))
    ]


def _samples(spec_schema: dict[str, Any]) -> list[tuple[dict[str, Any], tuple[str, ...], tuple[rules.Rule, ...]]]:
    """(defaulted spec, path, rules to evaluate there): random shapes for every rule set, and every
    sample engine argument for the extraArgs rules."""
    samples = []
    for spec in _spec_variants(200):
        defaulted = schema.apply_defaults(spec_schema, spec)
        samples.extend((defaulted, path, rule_set) for path, rule_set in RULE_SETS)
    for spec in _extra_args_variants():
        samples.append((schema.apply_defaults(spec_schema, spec), (), rules.extra_args_rules()))
    return samples


def test_cel_and_python_agree_on_every_rule(spec_schema: dict[str, Any]) -> None:
    outcomes: dict[str, set[bool]] = {}
    for defaulted, path, rule_set in _samples(spec_schema):
        value = defaulted
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            continue
        for rule in rule_set:
            cel = crd_validation.evaluate(rule.cel, value)
            python = rule.holds(value)
            assert cel == python, f"{rule.name}: CEL says {cel}, Python says {python} for {defaulted}"
            outcomes.setdefault(rule.name, set()).add(cel)
    every_rule = [rule.name for _, rule_set in RULE_SETS for rule in rule_set]
    assert sorted(outcomes) == sorted(every_rule)
    assert all(seen == {True, False} for seen in outcomes.values()), f"a rule never both held and broke: {outcomes}"


@pytest.mark.parametrize("name", ["qwen", "a", "llama-3-8b", "Qwen", "1abc", "a_b", "a.b", "abc-", "x" * 45, "x" * 46,
                                  "x" * 63, "x" * 64])
def test_root_name_rule_agrees(name: str) -> None:
    obj = {"metadata": {"name": name}}
    for rule in rules.ROOT_RULES:
        assert crd_validation.evaluate(rule.cel, obj) == rule.holds(obj), rule.name


def test_pydantic_accepts_exactly_what_the_api_server_accepts(spec_schema: dict[str, Any]) -> None:
    """pydantic runs the predicates on its own dump (its defaults); the API server runs the CEL on
    the object defaulted by the schema. Over many spec shapes both accept and refuse the same ones."""
    verdicts = set()
    for spec in _spec_variants(160, seed=11):
        defaulted = schema.apply_defaults(spec_schema, spec)
        assert crd_validation.schema_problems(spec_schema, defaulted) == []  # only the rules are in play
        api_server_ok = not crd_validation.cel_problems(spec_schema, defaulted)
        try:
            llmserver.LLMServerSpec.model_validate(spec)
            pydantic_ok = True
        except pydantic.ValidationError:
            pydantic_ok = False
        assert pydantic_ok == api_server_ok, spec
        verdicts.add(pydantic_ok)
    assert verdicts == {True, False}


def _references(cel: str) -> list[tuple[str, ...]]:
    """Field paths a rule reads: `self.a.b` → ('a', 'b'); a trailing method call (`.size()`) is dropped."""
    found = []
    for chain, call in re.findall(r"self((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\()?", cel):
        parts = tuple(chain.split(".")[1:])
        found.append(parts[:-1] if call else parts)
    return found


@pytest.mark.parametrize(
    "path,rule",
    [(path, rule) for path, rule_set in RULE_SETS for rule in rule_set] + [((), rule) for rule in rules.ROOT_RULES],
    ids=lambda value: value.name if isinstance(value, rules.Rule) else "/".join(value) or "spec",
)
def test_rules_name_only_fields_the_schema_has(path: tuple[str, ...], rule: rules.Rule) -> None:
    full = schema.llmserver_schema()
    if rule in rules.ROOT_RULES:
        for reference in _references(rule.cel):
            # At the root CEL may read only metadata.name and metadata.generateName.
            assert reference in {("metadata", "name"), ("metadata", "generateName")}, reference
        return
    node = _node(full["properties"]["spec"], path)
    targets = _references(rule.cel)
    if rule.field_path:
        targets.append(tuple(rule.field_path.lstrip(".").split(".")))
    for reference in targets:
        _node(node, reference)  # KeyError when the schema has no such field


def test_rules_are_attached_to_the_generated_schema() -> None:
    generated = crd_validation.open_api_schema(crd_validation.load_crds()["LLMServer"])
    expected: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for path, rule_set in RULE_SETS:
        expected.setdefault(path, []).extend(rule.to_validation() for rule in rule_set)
    for path, validations in expected.items():
        assert _node(generated["properties"]["spec"], path)["x-kubernetes-validations"] == validations
    assert generated["x-kubernetes-validations"] == [rule.to_validation() for rule in rules.ROOT_RULES]
