"""What the mlx adapter loader refuses before touching MLX: peft features beyond plain A/B
matrices, folders without an adapter; and mlx-vlm refusing adapters instead of ignoring them."""

from __future__ import annotations

import json
import pathlib

import pytest
from llmserver_backends import base, mlx_adapters, registry


def test_plain_peft_lora_scales_by_alpha_over_rank_or_its_square_root() -> None:
    assert mlx_adapters._peft_scale({"peft_type": "LORA", "r": 8, "lora_alpha": 32}) == 4.0
    assert mlx_adapters._peft_scale({"peft_type": "LORA", "r": 16, "lora_alpha": 32, "use_rslora": True}) == 8.0


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"use_dora": True}, "use_dora"),
        ({"rank_pattern": {"q_proj": 4}}, "rank_pattern"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"bias": "all"}, "bias"),
        ({"peft_type": "IA3"}, "peft_type IA3"),
    ],
)
def test_peft_features_mlx_cannot_apply_are_refused_by_name(extra: dict[str, object], named: str) -> None:
    with pytest.raises(base.UnsupportedRequest, match=named):
        mlx_adapters._peft_scale({"peft_type": "LORA", "r": 8, "lora_alpha": 16, **extra})


def test_a_folder_without_adapter_config_is_not_an_adapter(tmp_path: pathlib.Path) -> None:
    with pytest.raises(base.UnsupportedRequest, match="no adapter_config.json"):
        mlx_adapters._config(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps([1]))
    with pytest.raises(base.UnsupportedRequest, match="not a JSON object"):
        mlx_adapters._config(tmp_path)


def test_mlx_vlm_refuses_adapters_rather_than_serving_the_base_model() -> None:
    config = base.BackendConfig(model_path="/m", served_model_name="m", adapters={"a": "/a"})
    with pytest.raises(ValueError, match="mlx-vlm backend does not serve LoRA adapters"):
        registry.create("mlx-vlm", config)
