"""Reads LLMServer manifests for local mode and validates every one of them before anything starts.

All problems in all files are collected and reported together, each naming the file, the
document and the field, so one run of `llmserver up` shows everything that needs fixing.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable
from typing import Any

import pydantic
import yaml

import llmserver_api
from llmserver_cli.hosting import sources

_SUFFIXES = (".yaml", ".yml", ".json")


@dataclasses.dataclass(frozen=True)
class Manifest:
    """One validated LLMServer and where it came from (relative local paths resolve against it)."""

    server: llmserver_api.LLMServer
    origin: pathlib.Path

    @property
    def name(self) -> str:
        """The server's metadata.name (always set after validation)."""
        return self.server.metadata.name or ""


class ManifestError(Exception):
    """Raised with one line per problem; nothing has been started when it is raised."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _expand(paths: Iterable[pathlib.Path]) -> list[pathlib.Path]:
    files: list[pathlib.Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file()))
        else:
            files.append(path)
    return files


def format_validation_error(error: pydantic.ValidationError) -> list[str]:
    """`field.path: message` lines from a pydantic error, without pydantic's 'Value error, ' noise."""
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "(document)"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{loc}: {message}")
    return lines


def _is_ours(doc: dict[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith(llmserver_api.GROUP + "/")


def _validate_doc(doc: Any, where: str) -> tuple[llmserver_api.LLMServer | None, list[str]]:
    if not isinstance(doc, dict):
        return None, [f"{where}: not a mapping (expected an LLMServer object)"]
    if doc.get("kind") != "LLMServer":
        return None, [f"{where}: kind: expected LLMServer, got {doc.get('kind')!r}"]
    try:
        server = llmserver_api.LLMServer.model_validate(doc)
    except pydantic.ValidationError as error:
        return None, [f"{where}: {line}" for line in format_validation_error(error)]
    if not server.metadata.name:
        return None, [f"{where}: metadata.name: required (it names the local server)"]
    return server, []


def load(paths: Iterable[pathlib.Path]) -> list[Manifest]:
    """Every LLMServer in `paths` (files or folders of *.yaml), validated; raises ManifestError.

    Documents of other API groups (a Namespace, a Secret) are skipped: a manifest written for a
    cluster works unchanged. Our group's AppleNode is skipped too (no Macs in local mode).
    """
    manifests: list[Manifest] = []
    problems: list[str] = []
    for path in _expand(paths):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except OSError as error:
            problems.append(f"{path}: cannot read: {error.strerror or error}")
            continue
        except yaml.YAMLError as error:
            problems.append(f"{path}: not valid YAML: {error}")
            continue
        for index, doc in enumerate(docs):
            if doc is None or (isinstance(doc, dict) and (not _is_ours(doc) or doc.get("kind") == "AppleNode")):
                continue
            where = f"{path} (document {index + 1})"
            server, errors = _validate_doc(doc, where)
            problems.extend(errors)
            if server is not None:
                manifest = Manifest(server=server, origin=path.absolute())
                problems.extend(f"{where}: {line}" for line in sources.check_local(manifest.server, manifest.origin))
                manifests.append(manifest)
    problems.extend(_duplicates(manifests))
    if problems:
        raise ManifestError(problems)
    return manifests


def _duplicates(manifests: list[Manifest]) -> list[str]:
    """Names and served model names must be unique: the gateway routes by model name."""
    problems = []
    seen_names: dict[str, pathlib.Path] = {}
    seen_models: dict[str, pathlib.Path] = {}
    for manifest in manifests:
        name, model = manifest.name, manifest.server.spec.model
        if name in seen_names:
            problems.append(f"{manifest.origin}: metadata.name: {name!r} is also defined in {seen_names[name]}")
        if model in seen_models:
            problems.append(f"{manifest.origin}: spec.model: {model!r} is also served by a server in {seen_models[model]}")
        seen_names.setdefault(name, manifest.origin)
        seen_models.setdefault(model, manifest.origin)
    return problems
