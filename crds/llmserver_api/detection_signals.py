"""The signals `detection` reads from a model's files and config files, each with its reason.

Kept apart from `detection` (the public types and decisions) so each file has one concern. Every
function is pure and returns plain values plus the words that explain them.
"""

from __future__ import annotations

import collections
import enum
import pathlib
import re
from collections.abc import Mapping
from typing import Any, Protocol

from llmserver_api.llmserver import Backend, Capability

Config = Mapping[str, Any]
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")
GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
ENCODER_GGUF_ARCHS = {"bert", "nomic-bert", "jina-bert-v2", "xlm-roberta", "t5encoder"}
GGUF_POOLING_RANK = 4  # llama.cpp's LLAMA_POOLING_TYPE_RANK
TEXT_AND_VISION = {Capability.TEXT_GENERATION, Capability.VISION}
WEIGHT_SUFFIXES = (".gguf", ".safetensors", ".bin", ".npz", ".pth")


class Hardware(str, enum.Enum):
    """Where the model will run."""

    GPU = "gpu"  # NVIDIA (or other vLLM-supported) GPUs on a cluster node
    CPU = "cpu"  # a node without GPUs
    APPLE = "apple"  # a registered Mac (Apple Silicon, MLX)


class ModelFormat(str, enum.Enum):
    """How the weights are stored; written to status.resolved.format."""

    GGUF = "GGUF"
    HF_SAFETENSORS = "HF-safetensors"
    HF_PYTORCH = "HF-pytorch"
    MLX = "MLX"
    SENTENCE_TRANSFORMERS = "sentence-transformers"
    CROSS_ENCODER = "cross-encoder"
    UNKNOWN = "unknown"


class Described(Protocol):
    """The parts of detection.ModelFiles the signals read."""

    configs: Mapping[str, Any]
    name: str
    tags: tuple[str, ...]
    library_name: str | None
    gguf_metadata: Mapping[str, Any]


def _top_level(path: str) -> bool:
    return "/" not in path


def hf_weights(files: tuple[str, ...]) -> list[str]:
    """Top-level Hugging Face / MLX weight files (onnx/, openvino/, original/ copies are ignored)."""
    found = []
    for path in filter(_top_level, files):
        lower = path.lower()
        if lower.startswith("adapter_model."):
            continue
        if lower.endswith((".safetensors", ".npz")) or (lower.endswith(".bin") and "model" in lower):
            found.append(path)
    return found


def mlx_signal(files: tuple[str, ...], model: Described) -> str | None:
    """Why the weights are an MLX conversion, or None."""
    if "mlx" in model.tags or model.library_name == "mlx":
        return "the hub tags the repo as mlx (converted for MLX)"
    quantization = model.configs.get("config.json", {}).get("quantization")
    if isinstance(quantization, Mapping) and "bits" in quantization:
        return (f"config.json has MLX's quantization block (bits={quantization.get('bits')}, "
                f"group_size={quantization.get('group_size')})")
    npz = [path for path in filter(_top_level, files) if path.lower().endswith(".npz")]
    if npz:
        return f"MLX weights in {npz[0]}"
    return None


def gguf_models(paths: list[str]) -> dict[str, str]:
    """One entry per GGUF model: split files (`-00001-of-00003.gguf`) count once, as their first part."""
    groups: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
    for path in paths:
        match = re.fullmatch(r"(.+)-(\d{5})-of-\d{5}\.gguf", path, flags=re.IGNORECASE)
        key, part = (match.group(1), int(match.group(2))) if match else (path, 1)
        groups[key].append((part, path))
    return {key: min(parts)[1] for key, parts in groups.items()}


def gguf_capabilities(model: Described, model_file: str) -> tuple[tuple[Capability, ...], str]:
    """What a GGUF serves: from its header when the caller read it, else from its name."""
    architecture = model.gguf_metadata.get("general.architecture")
    pooling = model.gguf_metadata.get(f"{architecture}.pooling_type")
    name = f"{model.name} {model_file}".lower()
    if pooling == GGUF_POOLING_RANK:
        return (Capability.RERANK,), "the GGUF header sets rank pooling (a reranker)"
    if architecture in ENCODER_GGUF_ARCHS:
        return (Capability.EMBEDDINGS,), f"the GGUF header describes an encoder ({architecture}): an embedding model"
    if architecture and pooling not in (None, 0, -1):
        if "embed" in name:
            return (Capability.EMBEDDINGS,), (
                f"a {architecture} decoder with pooling {pooling}, named as an embedding model")
        return (Capability.TEXT_GENERATION, Capability.EMBEDDINGS), (
            f"the GGUF header describes a {architecture} language model with pooling {pooling}: it also embeds")
    if architecture:
        return (Capability.TEXT_GENERATION,), f"the GGUF header describes a {architecture} language model"
    if "rerank" in name:
        return (Capability.RERANK,), "the repo or file name says reranker"
    if "embed" in name:
        return (Capability.EMBEDDINGS,), "the repo or file name says embedding model"
    return (Capability.TEXT_GENERATION,), "a GGUF language model: llama.cpp serves chat and completions"


def label_count(config: Config) -> tuple[int, str]:
    """Output labels of a classification head, and where that number came from."""
    if isinstance(config.get("num_labels"), int):
        return config["num_labels"], "num_labels"
    if isinstance(config.get("id2label"), Mapping):
        return len(config["id2label"]), "id2label"
    return 2, "transformers' default (no id2label)"


def vision_signal(configs: Mapping[str, Any]) -> str | None:
    """Why the model takes images, or None."""
    config = configs.get("config.json", {})
    if isinstance(config.get("vision_config"), Mapping):
        return f"config.json has a vision_config ({config['vision_config'].get('model_type', 'vision tower')})"
    if config.get("mm_vision_tower"):
        return f"config.json names a vision tower ({config['mm_vision_tower']})"
    preprocessor = configs.get("preprocessor_config.json", {})
    if isinstance(preprocessor, Mapping) and ("image_processor_type" in preprocessor or "image_mean" in preprocessor):
        kind = preprocessor.get("image_processor_type") or preprocessor.get("processor_class") or "image processor"
        return f"preprocessor_config.json describes an image processor ({kind})"
    processor = configs.get("processor_config.json", {})
    if isinstance(processor, Mapping) and "image_token" in processor:
        return f"processor_config.json declares an image token ({processor['image_token']})"
    return None


def capabilities(files: tuple[str, ...], configs: Mapping[str, Any]) -> tuple[
    tuple[Capability, ...], list[str], list[str], ModelFormat | None
]:
    """(capabilities, reasons, problems, layout format) from config.json and the file layout."""
    config = configs.get("config.json", {})
    architectures = config.get("architectures") or []
    architecture = architectures[0] if architectures else None
    if architecture and architecture.endswith("ForSequenceClassification"):
        labels, source = label_count(config)
        if labels == 1:
            why = f"{architecture} with one label is a cross-encoder (reranker)"
            return (Capability.RERANK,), [why], [], ModelFormat.CROSS_ENCODER
        problem = f"{architecture} has {labels} labels ({source}): a classifier, not a reranker (rerank needs one)"
        return (), [], [problem], None
    layout = [name for name in SENTENCE_TRANSFORMERS_FILES if name in files]
    if layout:
        why = f"sentence-transformers layout ({layout[0]}): an embedding model"
        return (Capability.EMBEDDINGS,), [why], [], ModelFormat.SENTENCE_TRANSFORMERS
    vision = vision_signal(configs)
    model_type = config.get("model_type", "?")
    if architecture and architecture.endswith(GENERATIVE_SUFFIXES):
        if config.get("is_encoder_decoder") and not vision:
            return (), [], [f"{architecture} is an encoder-decoder ({model_type}) model, which no backend serves"], None
        if vision:
            return (Capability.TEXT_GENERATION, Capability.VISION), [f"{architecture} generates text", vision], [], None
        return (Capability.TEXT_GENERATION,), [f"{architecture} generates text"], [], None
    if vision:
        return (), [], [f"{architecture or model_type} takes images but does not generate text ({vision})"], None
    if architecture and architecture.endswith("Model"):
        why = f"{architecture} is a bare encoder without a task head: served as embeddings"
        return (Capability.EMBEDDINGS,), [why], [], None
    if not architecture:
        return (), [], [f"config.json names no architectures (model_type {model_type})"], None
    return (), [], [f"{architecture} has no text generation, embedding or one-label classification head"], None


def hf_problems(files: tuple[str, ...], configs: Mapping[str, Any], weights: list[str]) -> list[str]:
    """Why Hugging Face-style files cannot be judged at all (no weights, no config, an adapter)."""
    if not weights:
        adapter = configs.get("adapter_config.json")
        if "adapter_config.json" in files:
            base = adapter.get("base_model_name_or_path", "?") if isinstance(adapter, Mapping) else "?"
            return [f"a PEFT/LoRA adapter (base model {base}), not a whole model"]
        return ["no model weights (.gguf, .safetensors, pytorch_model.bin or MLX .npz)"]
    if "config.json" not in configs:
        listed = "config.json" in files
        return ["config.json is listed but could not be read" if listed else "no config.json next to the weights"]
    return []


def hf_warnings(configs: Mapping[str, Any]) -> list[str]:
    """Things the user should know that do not change the decision."""
    config = configs.get("config.json", {})
    warnings = []
    if config.get("auto_map"):
        warnings.append("config.json maps classes to the repository's own code (auto_map): "
                        "transformers and vLLM load it only with spec.trustRemoteCode: true")
    quantization = config.get("quantization_config")
    if isinstance(quantization, Mapping) and quantization.get("quant_method"):
        warnings.append(f"pre-quantised with {quantization['quant_method']}: the engine needs that kernel")
    return warnings


def backend_for(fmt: ModelFormat, caps: tuple[Capability, ...], hardware: Hardware) -> tuple[Backend | None, str]:
    """(backend, reason), or (None, why not) when no backend fits."""
    if fmt is ModelFormat.GGUF:
        if hardware is Hardware.APPLE:
            return None, ("GGUF weights need llama-cpp, but Macs run only mlx and mlx-vlm: serve it on a "
                          "cluster node (without spec.apple) or use an MLX conversion")
        where = "offloading layers to the GPU" if hardware is Hardware.GPU else "on CPU"
        return Backend.LLAMA_CPP, f"GGUF weights load in llama.cpp ({where})"
    vision = Capability.VISION in caps
    if fmt is ModelFormat.MLX or hardware is Hardware.APPLE:
        if not set(caps) <= TEXT_AND_VISION:
            names = ", ".join(c.value for c in caps if c not in TEXT_AND_VISION)
            why = "MLX weights load only in" if fmt is ModelFormat.MLX else "on a Mac only"
            return None, f"{why} mlx and mlx-vlm, which serve text generation and vision, not {names}"
        if fmt is ModelFormat.MLX:
            return (Backend.MLX_VLM, "MLX weights with vision load in mlx-vlm") if vision else (
                Backend.MLX, "MLX weights load in mlx-lm")
        return (Backend.MLX_VLM, "on a Mac, mlx-vlm serves vision-language models") if vision else (
            Backend.MLX, "on a Mac, mlx-lm loads Hugging Face weights")
    if hardware is Hardware.GPU:
        pooling = [c.value for c in caps if c in (Capability.EMBEDDINGS, Capability.RERANK)]
        if pooling:
            # The vllm backend serves generation only; transformers embeds and reranks on CUDA too.
            return Backend.TRANSFORMERS, f"Hugging Face weights for {', '.join(pooling)} with GPUs: transformers"
        return Backend.VLLM, "Hugging Face weights with GPUs: vLLM"
    return Backend.TRANSFORMERS, "Hugging Face weights without GPUs: transformers"


def summarize(files: tuple[str, ...], model: Described) -> str:
    """A short account of what detection saw, for messages that say it cannot decide."""
    suffixes = collections.Counter(pathlib.PurePosixPath(path).suffix.lower() or path for path in files)
    weights = [(suffix, suffixes.pop(suffix)) for suffix in WEIGHT_SUFFIXES if suffix in suffixes]
    counted = weights + suffixes.most_common(2)
    parts = [f"{len(files)} file{'s' if len(files) != 1 else ''}"] + [f"{count} {suffix}" for suffix, count in counted]
    config = model.configs.get("config.json", {})
    if config.get("architectures"):
        parts.append(f"config.json: {', '.join(config['architectures'])}")
    elif config.get("model_type"):
        parts.append(f"config.json: model_type {config['model_type']}")
    if model.tags:
        parts.append("tags: " + ", ".join(sorted(model.tags)[:6]))
    return ", ".join(parts)
