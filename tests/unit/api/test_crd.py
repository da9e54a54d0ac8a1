"""The generated CRDs: committed files match the models, Kubernetes accepts them, the schemas are
structural and documented, and the public wire names stay as the issue fixed them."""

from __future__ import annotations

import pathlib
from typing import Any

import kubernetes_validate
import pytest
import yaml

from llmserver_api import generate, llmserver
from llmserver_backends import registry
from testkit import crd_validation

KUBERNETES_VERSIONS = ["1.30", "1.32"]


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return crd_validation.load_crds()


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (properties, items and additionalProperties)."""
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_committed_crds_match_the_models() -> None:
    rendered = generate.rendered()
    for directory in generate.target_dirs(generate.REPO_ROOT):
        for name, text in rendered.items():
            path = directory / name
            assert path.exists(), f"{path} missing: run `python -m llmserver_api.generate`"
            assert path.read_text() == text, f"{path} drifted: run `python -m llmserver_api.generate`"
    assert sorted(p.name for p in (generate.REPO_ROOT / "crds").glob("*.yaml")) == sorted(rendered)


def test_generate_check_reports_drift(tmp_path: pathlib.Path) -> None:
    assert generate.main(["--root", str(tmp_path), "--check"]) == 1  # nothing written there yet
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert generate.main(["--root", str(tmp_path), "--check"]) == 0
    target = tmp_path / "crds" / next(iter(generate.rendered()))
    target.write_text(target.read_text().replace("LLMServer", "LLMServr", 1))
    assert generate.main(["--root", str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kind", ["LLMServer", "AppleNode"])
def test_kubernetes_validate_accepts_the_crd(crds: dict[str, dict[str, Any]], kind: str, version: str) -> None:
    kubernetes_validate.validate(crds[kind], version, strict=True)


def test_kubernetes_validate_would_catch_a_broken_crd(crds: dict[str, dict[str, Any]]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(crds["LLMServer"]))
    broken["spec"]["scope"] = "Everywhere"
    broken["spec"]["versions"][0]["servedd"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("kind", ["LLMServer", "AppleNode"])
def test_schema_is_structural(crds: dict[str, dict[str, Any]], kind: str) -> None:
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "not", "$defs", "definitions", "const", "title"}
    for path, node in _walk(crd_validation.open_api_schema(crds[kind])):
        assert not forbidden & node.keys(), f"{kind}{path}: {forbidden & node.keys()}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{kind}{path} has no type"
        assert node.get("additionalProperties") is not False, f"{kind}{path}: additionalProperties: false"
        assert not ("properties" in node and "additionalProperties" in node), f"{kind}{path}: both"
        if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(node["exclusiveMinimum"], bool):
            pytest.fail(f"{kind}{path}: numeric exclusiveMinimum is JSON Schema 2020, not OpenAPI v3.0")
        if "default" in node and node.get("type") == "object":
            assert isinstance(node["default"], dict)


@pytest.mark.parametrize("kind", ["LLMServer", "AppleNode"])
def test_every_property_has_a_description(crds: dict[str, dict[str, Any]], kind: str) -> None:
    for path, node in _walk(crd_validation.open_api_schema(crds[kind])):
        if "[]" not in path.rsplit(".", 1)[-1] and "{}" not in path.rsplit(".", 1)[-1]:
            assert node.get("description", "").strip(), f"{kind}{path or ' (root)'} has no description"


def test_printer_columns(crds: dict[str, dict[str, Any]]) -> None:
    version = crds["LLMServer"]["spec"]["versions"][0]
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert list(columns) == ["Mode", "Backend", "Model", "Phase", "Ready", "Age"]
    schema = version["schema"]["openAPIV3Schema"]
    for name, json_path in columns.items():
        if name == "Age":
            continue
        node = schema
        for part in json_path.strip(".").split("."):
            node = node["properties"][part]  # every column shows a field that exists
    apple = crds["AppleNode"]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [column["name"] for column in apple][0] == "Ready"


def test_names_scope_and_subresources(crds: dict[str, dict[str, Any]]) -> None:
    llms, apple = crds["LLMServer"]["spec"], crds["AppleNode"]["spec"]
    assert (llms["group"], llms["scope"]) == ("serving.llmserver.dev", "Namespaced")
    assert llms["names"]["shortNames"] == ["llms"]
    assert (apple["scope"], apple["names"]["shortNames"]) == ("Cluster", ["applenode"])
    for spec in (llms, apple):
        (version,) = spec["versions"]
        assert version["name"] == "v1alpha1" and "status" in version["subresources"]
    assert apple["versions"][0]["subresources"] == {"status": {}}  # a Mac is not scaled


def test_llmserver_scale_subresource_points_at_fields_that_exist(crds: dict[str, dict[str, Any]]) -> None:
    """`kubectl scale llms/NAME`, HPAs and KEDA read and write these paths: each must be in the schema,
    replicas integers and the selector a string (the API server's rule for labelSelectorPath)."""
    (version,) = crds["LLMServer"]["spec"]["versions"]
    scale = version["subresources"]["scale"]
    assert scale == {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                     "labelSelectorPath": ".status.selector"}
    schema = version["schema"]["openAPIV3Schema"]
    types = {}
    for path in scale.values():
        node = schema
        for part in path.strip(".").split("."):
            node = node["properties"][part]
        types[path] = node["type"]
    assert types == {".spec.replicas": "integer", ".status.replicas": "integer", ".status.selector": "string"}


def test_registry_matches_the_backend_enum(crds: dict[str, dict[str, Any]]) -> None:
    spec = crd_validation.open_api_schema(crds["LLMServer"])["properties"]["spec"]
    enum = set(spec["properties"]["backend"]["enum"])
    assert enum == {backend.value for backend in llmserver.Backend}
    assert set(registry.BACKENDS) == enum - {"auto"}


# The public wire names fixed by the foundation issue; parts of the project and users rely on them.
PUBLIC_SPEC_FIELDS = """
model mode backend source source.huggingFace.repo source.huggingFace.file source.huggingFace.revision
source.huggingFace.tokenSecretRef.name source.huggingFace.tokenSecretRef.key source.pvc.claimName source.pvc.path
capabilities replicas resources.gpus resources.gpuResourceName resources.cpu resources.memory
resources.nodeSelector resources.tolerations llamaCpp.nGpuLayers llamaCpp.nCtx llamaCpp.nBatch llamaCpp.nThreads
vllm.tensorParallelSize vllm.gpuMemoryUtilization vllm.maxModelLen vllm.dtype transformers.loadIn4bit
transformers.loadIn8bit transformers.dtype mlx.maxKvSize mlxVlm.maxKvSize mlxVlm.maxTokens extraArgs
proxy.url proxy.upstreamModel proxy.apiKeySecretRef.name proxy.apiKeySecretRef.key
""".split()
PUBLIC_STATUS_FIELDS = "phase conditions observedGeneration endpoint readyReplicas download placement".split()


@pytest.mark.parametrize("part,fields", [("spec", PUBLIC_SPEC_FIELDS), ("status", PUBLIC_STATUS_FIELDS)])
def test_public_wire_names_are_kept(crds: dict[str, dict[str, Any]], part: str, fields: list[str]) -> None:
    root = crd_validation.open_api_schema(crds["LLMServer"])["properties"][part]
    for field in fields:
        node = root
        for name in field.split("."):
            assert name in node.get("properties", {}), f"{part}.{field} is missing from the CRD"
            node = node["properties"][name]


def test_settings_the_operator_defaults_carry_no_schema_default(crds: dict[str, dict[str, Any]]) -> None:
    """A structural default is written into every stored object, so the operator could no longer tell
    a server that named nvidia.com/gpu from one that left the GPU resource (or image) to the chart."""
    schema = crds["LLMServer"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "default" not in schema["resources"]["properties"]["gpuResourceName"]
    assert "default" not in schema["image"]
