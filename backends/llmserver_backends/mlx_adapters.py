"""LoRA adapters on mlx-lm, fixed at load: one model view per adapter over the shared base weights.

mlx-lm applies an adapter by replacing the model's Linear layers with LoRALinear layers in place
(`load_adapters`), so one model object holds one adapter at most. With several adapters each gets
its own copy of the module tree, whose Linear layers still point at the base model's weight
arrays (MLX arrays are shared handles, never duplicated by the copy): an adapter costs its own
LoRA matrices plus a few Python objects, not a second base model. The base model stays unwrapped
and serves requests without an adapter. Adding or removing an adapter needs a restart
(`supports_live_adapters` is False): the runtime's live endpoints answer 400.

Two adapter layouts are read:
- mlx-lm's own (`mlx_lm.lora` training output): adapter_config.json with `lora_parameters`, plus
  adapters.safetensors; loaded by mlx-lm's `load_adapters`;
- peft's (what Hugging Face LoRA repositories and `tiny-model --kind hf-lora` hold):
  adapter_config.json with `peft_type` LORA, plus adapter_model.safetensors; each lora_A/lora_B
  pair becomes a LoRALinear (lora_a = A^T, lora_b = B^T, scale = lora_alpha / r, or / sqrt(r) with
  use_rslora). peft features that change more than those matrices (DoRA, per-module ranks or
  alphas, extra trained modules, biases) are refused with a message naming them.
"""

from __future__ import annotations

import copy
import json
import math
import pathlib
import re
from typing import Any

from llmserver_backends import base

PEFT_PREFIX = "base_model.model."
_PEFT_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.default)?\.weight$")


def adapted(model: Any, path: str) -> Any:
    """A view of `model` with the adapter at `path` applied; `model` itself is left unchanged."""
    folder = pathlib.Path(path)
    config = _config(folder)
    view = share_weights(model)
    if "peft_type" in config:
        _apply_peft(view, folder, config)
    else:
        from mlx_lm.tuner import utils as tuner_utils

        try:
            tuner_utils.load_adapters(view, str(folder))
        except (KeyError, ValueError, FileNotFoundError) as error:
            raise base.UnsupportedRequest(f"the mlx-lm adapter at {folder} cannot be applied: {error}") from error
    view.eval()
    return view


def share_weights(module: Any) -> Any:
    """A copy of an MLX module tree: new Module objects (so layers can be swapped in the copy
    alone), the same weight arrays."""
    import mlx.nn as nn

    if isinstance(module, nn.Module):
        clone = copy.copy(module)
        for key, value in module.items():
            clone[key] = share_weights(value)
        clone._no_grad = set(module._no_grad)  # a set lives outside the dict: not shared either
        return clone
    if isinstance(module, list):
        return [share_weights(item) for item in module]
    if isinstance(module, tuple):
        return tuple(share_weights(item) for item in module)
    if isinstance(module, dict):
        return {key: share_weights(value) for key, value in module.items()}
    return module  # an mx.array or a plain value: shared


def _config(folder: pathlib.Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except FileNotFoundError:
        raise base.UnsupportedRequest(f"{folder} holds no adapter_config.json: not a LoRA adapter") from None
    except (OSError, ValueError) as error:
        raise base.UnsupportedRequest(f"{folder}/adapter_config.json cannot be read: {error}") from error
    if not isinstance(config, dict):
        raise base.UnsupportedRequest(f"{folder}/adapter_config.json is not a JSON object")
    return config


# peft settings that change more than the A/B matrices, and the values that mean "not used".
_PEFT_UNUSED: dict[str, tuple[Any, ...]] = {
    "use_dora": (False, None),
    "rank_pattern": ({}, None),
    "alpha_pattern": ({}, None),
    "modules_to_save": (None, []),
    "fan_in_fan_out": (False, None),
    "layer_replication": (None,),
    "bias": ("none", None),
}


def _peft_scale(config: dict[str, Any]) -> float:
    refused = [name for name, unused in _PEFT_UNUSED.items() if config.get(name) not in unused]
    if config.get("peft_type") != "LORA":
        refused.append(f"peft_type {config.get('peft_type')}")
    if refused:
        raise base.UnsupportedRequest(f"the peft adapter uses what mlx cannot apply: {', '.join(refused)}")
    rank, alpha = int(config["r"]), float(config.get("lora_alpha", config["r"]))
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def _apply_peft(model: Any, folder: pathlib.Path, config: dict[str, Any]) -> None:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_unflatten
    from mlx_lm.tuner import lora

    scale = _peft_scale(config)
    weights_file = folder / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise base.UnsupportedRequest(f"{folder} holds no adapter_model.safetensors (peft's .bin is not read)")
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in mx.load(str(weights_file)).items():
        match = _PEFT_KEY.match(key.removeprefix(PEFT_PREFIX))
        if match is None:
            raise base.UnsupportedRequest(f"the peft adapter holds a tensor that is not a LoRA matrix: {key}")
        pairs.setdefault(match["module"], {})[match["which"]] = value
    modules = dict(model.named_modules())
    replaced = []
    for name, pair in pairs.items():
        layer = modules.get(name)
        if not isinstance(layer, nn.Linear | nn.QuantizedLinear) or set(pair) != {"A", "B"}:
            raise base.UnsupportedRequest(f"the peft adapter's {name} is not a Linear layer of this model")
        a, b = pair["A"], pair["B"]  # A: (r, in), B: (out, r)
        wrapped = lora.LoRALinear.from_base(layer, r=int(a.shape[0]), dropout=0.0, scale=scale)
        if wrapped.lora_a.shape != a.T.shape or wrapped.lora_b.shape != b.T.shape:
            raise base.UnsupportedRequest(f"the peft adapter's {name} does not match this model's layer shape")
        wrapped.lora_a = a.T.astype(mx.float32)
        wrapped.lora_b = b.T.astype(mx.float32)
        replaced.append((name, wrapped))
    model.update_modules(tree_unflatten(replaced))
