"""Detects a model's format, capabilities and the backend to serve it with, from its files.

One pure decision shared by the operator (`backend: auto`, missing capabilities), the runtime
(`serve --backend auto`) and the CLI (`llmserver inspect`): it looks only at a file list and
parsed config files, as huggingface-hub reports them for a repo or as found in a local directory
(`local_model_files`, the one helper here that touches the disk). Every decision carries
human-readable reasons; when the files do not settle a question the result says it cannot decide
and what it saw, never a silent guess. `resolve` applies a spec's explicit values on top.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from llmserver_api import detection_signals as signals
from llmserver_api.llmserver import Backend, Capability, LLMServerSpec, Resolution

Hardware = signals.Hardware
ModelFormat = signals.ModelFormat

# The small JSON files detection reads: fetch these from a repo, or find them in a directory.
CONFIG_FILES = (
    "config.json",
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "adapter_config.json",
)
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_LISTED_FILES = 20000
_SPLIT_PART = re.compile(r"(.+)-(\d{5})-of-(\d{5})(\.gguf)", re.IGNORECASE)


def split_parts(path: str) -> tuple[str, ...]:
    """Every part, in order, of the split GGUF that `path` is one part of (`m-00002-of-00003.gguf`
    → m-00001-… to m-00003-…, same folder); () for any other file. llama.cpp loads a split from
    its first part and opens the others by these names, so all of them must be there."""
    match = _SPLIT_PART.fullmatch(path)
    if match is None or not 1 <= int(match[2]) <= int(match[3]):
        return ()
    stem, count, suffix = match[1], match[3], match[4]
    return tuple(f"{stem}-{part:05d}-of-{count}{suffix}" for part in range(1, int(count) + 1))


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """What detection looks at: repo-relative file paths and the parsed CONFIG_FILES present."""

    files: tuple[str, ...]
    configs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # file name -> parsed JSON
    name: str = ""  # repo id or local path, for messages and name hints
    selected_file: str | None = None  # spec.source.huggingFace.file, or the file a path points at
    tags: tuple[str, ...] = ()  # hub tags, e.g. "mlx", "gguf", "sentence-transformers"
    library_name: str | None = None  # hub library_name, e.g. "mlx"
    gguf_metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # GGUF header keys, if read


@dataclasses.dataclass(frozen=True)
class Detection:
    """What the files say and, for one hardware target, the backend. `backend` is None exactly
    when it cannot decide; `problems` then says why and `seen` what it looked at."""

    format: ModelFormat
    capabilities: tuple[Capability, ...]
    reasons: tuple[str, ...]
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    model_file: str | None = None  # the GGUF file to load, relative to the model directory
    seen: str = ""
    hardware: Hardware | None = None  # None: a profile of the files, before choosing a backend
    backend: Backend | None = None

    @property
    def decided(self) -> bool:
        """True when a backend was chosen."""
        return self.backend is not None

    @property
    def reason(self) -> str:
        """One line for status and logs: the reasons, or why it cannot decide and what it saw."""
        if self.decided or (self.hardware is None and not self.problems):
            return "; ".join(self.reasons)
        found = f"; found: {'; '.join(self.reasons)}" if self.reasons else ""
        return f"cannot decide: {'; '.join(self.problems)}{found} (saw {self.seen})"


def _undecided(problem: str, seen: str, fmt: ModelFormat = ModelFormat.UNKNOWN, **extra: Any) -> Detection:
    return Detection(fmt, (), extra.pop("reasons", ()), (problem,), seen=seen, **extra)


def profile(model: ModelFiles) -> Detection:
    """Format and capabilities from the files alone (no backend yet)."""
    files = tuple(sorted({path.strip("/").removeprefix("./") for path in model.files if path.strip("/")}))
    seen = signals.summarize(files, model)
    if model.selected_file:
        selected = model.selected_file.strip("/")
        if files and selected not in files:
            return _undecided(f"the chosen file {selected} is not among the files", seen)
        if not selected.lower().endswith(".gguf"):
            return _undecided(f"the chosen file {selected} is not a GGUF; only a GGUF loads from one file", seen)
        return _gguf(model, [selected], seen, files, chosen=True)
    gguf = [path for path in files if path.lower().endswith(".gguf")]
    weights = signals.hf_weights(files)
    if gguf and weights:
        return _undecided(
            f"both GGUF files ({len(gguf)}) and Hugging Face weights ({len(weights)}); choose a GGUF with "
            "spec.source.huggingFace.file for llama-cpp, or serve a copy without the GGUF files", seen)
    if gguf:
        return _gguf(model, gguf, seen, files)
    problems = signals.hf_problems(files, model.configs, weights)
    if problems:
        return _undecided(problems[0], seen)
    capabilities, reasons, problems, layout = signals.capabilities(files, model.configs)
    mlx = signals.mlx_signal(files, model)
    if mlx:
        fmt, reasons = ModelFormat.MLX, [mlx, *reasons]
    elif layout:
        fmt = layout
    else:
        safetensors = any(path.endswith(".safetensors") for path in weights)
        fmt = ModelFormat.HF_SAFETENSORS if safetensors else ModelFormat.HF_PYTORCH
        reasons = [f"Hugging Face weights ({weights[0]}{' ...' if len(weights) > 1 else ''})", *reasons]
    warnings = tuple(signals.hf_warnings(model.configs))
    return Detection(fmt, capabilities, tuple(reasons), tuple(problems), warnings, seen=seen)


def _gguf(model: ModelFiles, gguf: list[str], seen: str, files: tuple[str, ...], chosen: bool = False) -> Detection:
    projectors = [path for path in gguf if "mmproj" in pathlib.PurePosixPath(path).name.lower()]
    groups = signals.gguf_models([path for path in gguf if path not in projectors])
    warnings = tuple(f"vision projector {path} present: llama.cpp needs it passed to serve images"
                     for path in projectors[:1])
    if not groups:
        return _undecided("only vision projector GGUF files, no language model", seen, ModelFormat.GGUF)
    first = sorted(groups.values())[0]
    parts = split_parts(first)  # one model in several files loads from its first, whichever was named
    capabilities, reason = signals.gguf_capabilities(model, parts[0] if parts else first)
    if len(groups) > 1:
        names = ", ".join(sorted(groups.values())[:6]) + (" ..." if len(groups) > 6 else "")
        problem = f"{len(groups)} GGUF models ({names}); choose one with spec.source.huggingFace.file"
        return Detection(ModelFormat.GGUF, capabilities, (reason,), (problem,), warnings, seen=seen)
    why = f"the chosen file {first} is a GGUF" if chosen else f"the only GGUF model is {first}"
    if parts:
        missing = [part for part in parts if part not in files] if files else []
        if missing:
            problem = (f"the split GGUF {parts[0]} lacks {len(missing)} of its {len(parts)} parts "
                       f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})")
            return _undecided(problem, seen, ModelFormat.GGUF, reasons=(why, reason))
        why, first = f"{why}, split in {len(parts)} parts: llama.cpp loads {parts[0]} and opens the rest", parts[0]
    return Detection(ModelFormat.GGUF, capabilities, (why, reason), (), warnings, first, seen)


def choose_backend(found: Detection, hardware: Hardware) -> Detection:
    """The backend for `hardware`: GGUF → llama-cpp; Hugging Face weights → vllm with GPUs, else
    transformers; MLX weights or a Mac → mlx, or mlx-vlm with vision."""
    if found.problems:
        return dataclasses.replace(found, hardware=hardware, backend=None)
    backend, why = signals.backend_for(found.format, found.capabilities, hardware)
    if backend is None:
        return dataclasses.replace(found, hardware=hardware, backend=None, problems=(why,))
    warnings = found.warnings
    if backend in (Backend.MLX, Backend.MLX_VLM) and hardware is not Hardware.APPLE:
        warnings += ("the operator places mlx and mlx-vlm models on a registered Mac (AppleNode)",)
    return dataclasses.replace(
        found, hardware=hardware, backend=backend, reasons=found.reasons + (why,), warnings=warnings)


def detect(model: ModelFiles, hardware: Hardware) -> Detection:
    """Format, capabilities and backend of `model` on `hardware`."""
    return choose_backend(profile(model), hardware)


def detect_all(model: ModelFiles) -> dict[Hardware, Detection]:
    """The decision for every hardware target (what `llmserver inspect` prints)."""
    found = profile(model)
    return {hardware: choose_backend(found, hardware) for hardware in Hardware}


def hardware_for(spec: LLMServerSpec) -> Hardware:
    """The hardware an LLMServer asks for: a Mac with spec.apple, GPUs with resources.gpus > 0."""
    if spec.apple is not None:
        return Hardware.APPLE
    return Hardware.GPU if spec.resources.gpus > 0 else Hardware.CPU


def hardware_of_machine(system: str, machine: str, gpu_count: int) -> Hardware:
    """The runtime's own machine: pass platform.system(), platform.machine() and the GPU count."""
    if gpu_count > 0:
        return Hardware.GPU
    if system == "Darwin" and machine in ("arm64", "aarch64"):
        return Hardware.APPLE
    return Hardware.CPU


def local_model_files(path: str | os.PathLike[str]) -> ModelFiles:
    """Lists a local model (a directory, or one GGUF file) and reads its CONFIG_FILES.

    The only I/O in this module. A config that cannot be read or parsed is left out; the decision
    then reports it as listed but unreadable.
    """
    target = pathlib.Path(path)
    if target.is_file():
        # A part of a split: its siblings count as listed, and only the first part has the header.
        parts = [part for part in split_parts(target.name) if (target.parent / part).is_file()]
        first = target.parent / (parts or [target.name])[0]
        header = read_gguf_header(first) if target.suffix.lower() == ".gguf" else {}
        listed = tuple(sorted({target.name, *parts}))
        return ModelFiles(files=listed, name=str(target), selected_file=target.name, gguf_metadata=header)
    if not target.is_dir():
        raise FileNotFoundError(f"no model file or directory at {target}")
    files: list[str] = []
    for root, dirs, names in os.walk(target):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [pathlib.Path(root, n).relative_to(target).as_posix() for n in names if not n.startswith(".")]
        if len(files) > MAX_LISTED_FILES:
            break
    configs = {}
    for name in CONFIG_FILES:
        try:
            if (target / name).is_file() and (target / name).stat().st_size <= MAX_CONFIG_BYTES:
                configs[name] = json.loads((target / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    gguf = [name for name in files if name.lower().endswith(".gguf") and "mmproj" not in name.lower()]
    models = signals.gguf_models(gguf)  # a split's first part: the one holding the header
    header = read_gguf_header(target / next(iter(models.values()))) if len(models) == 1 else {}
    return ModelFiles(files=tuple(sorted(files)), configs=configs, name=str(target), gguf_metadata=header)


def read_gguf_header(path: pathlib.Path) -> dict[str, Any]:
    """general.architecture and its pooling_type from a GGUF header, when the optional `gguf`
    package is installed (it is with the llama-cpp extra); {} when it is not or the file is bad."""
    try:
        import gguf  # noqa: PLC0415 - optional, heavy, and only needed for local GGUF files
    except ImportError:
        return {}
    try:
        fields = gguf.GGUFReader(str(path)).fields
        architecture = fields["general.architecture"].contents()
        header: dict[str, Any] = {"general.architecture": architecture}
        if f"{architecture}.pooling_type" in fields:
            header[f"{architecture}.pooling_type"] = int(fields[f"{architecture}.pooling_type"].contents())
        return header
    except Exception:  # noqa: BLE001 - a truncated or foreign file: decide from the name instead
        return {}


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A spec's explicit values on top of detection: what to run, why, and any contradiction.

    `backend` is None, or `capabilities` empty, when neither the spec nor the files settle it:
    the operator then reports `detection.reason` in a condition instead of guessing."""

    backend: Backend | None
    capabilities: tuple[Capability, ...]
    detection: Detection
    reason: str
    contradictions: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when there is a backend and at least one capability, and nothing contradicts."""
        return self.backend is not None and bool(self.capabilities) and not self.contradictions

    def to_status(self) -> Resolution:
        """status.resolved of the LLMServer."""
        return Resolution(backend=self.backend, capabilities=list(self.capabilities),
                          format=self.detection.format.value, reason=self.reason)


LOADERS = {ModelFormat.GGUF: (Backend.LLAMA_CPP,), ModelFormat.MLX: (Backend.MLX, Backend.MLX_VLM)}


def resolve(spec: LLMServerSpec, model: ModelFiles, hardware: Hardware | None = None) -> Resolved:
    """Explicit spec.backend and spec.capabilities win; detection fills in the rest (`auto`,
    omitted capabilities). What the files contradict is reported, never silently obeyed or dropped."""
    found = detect(model, hardware or hardware_for(spec))
    explicit_backend = Backend(spec.backend) if spec.backend != Backend.AUTO else None
    backend = explicit_backend or found.backend
    capabilities = tuple(spec.capabilities or ()) or found.capabilities
    if explicit_backend is None:
        reasons = [found.reason]
    else:
        reasons = [f"spec.backend is {explicit_backend.value}"]
        if not spec.capabilities:
            reasons.append(f"detected: {'; '.join(found.reasons)}" if found.capabilities else found.reason)
    if spec.capabilities:
        reasons.append("spec.capabilities given")
    contradictions = []
    if spec.capabilities and found.capabilities:
        missing = [c.value for c in spec.capabilities if c not in found.capabilities]
        if missing:
            contradictions.append(
                f"spec.capabilities asks for {', '.join(missing)}, but the model offers "
                f"{', '.join(c.value for c in found.capabilities)} ({'; '.join(found.reasons)})")
    if explicit_backend and found.format in LOADERS and explicit_backend not in LOADERS[found.format]:
        allowed = " or ".join(b.value for b in LOADERS[found.format])
        contradictions.append(
            f"spec.backend {explicit_backend.value} cannot load {found.format.value} weights (use {allowed})")
    elif explicit_backend is Backend.LLAMA_CPP and found.format not in (ModelFormat.GGUF, ModelFormat.UNKNOWN):
        contradictions.append(f"spec.backend llama-cpp needs a GGUF file, but the model is {found.format.value}")
    return Resolved(backend, capabilities, found, "; ".join(reasons), tuple(contradictions))
