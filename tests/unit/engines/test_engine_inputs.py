"""Pure helpers of the vLLM and MLX backends: message shapes, token budgets, stop strings, deltas.

No engine is imported here: these are the decisions the backends make before and after the
engine runs, checked on plain data."""

from __future__ import annotations

import base64
import dataclasses
import json
import pathlib

import pytest
from llmserver_backends import base, mlx_generation, vllm_inputs

pytestmark = pytest.mark.timeout(30)


def test_images_go_back_into_openai_image_url_parts() -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    messages = [
        base.ChatMessage("system", "Be brief."),
        base.ChatMessage("user", "What is this?", images=(base.ImagePart(png, "image/png"),), name="ann"),
    ]
    system, user = vllm_inputs.openai_messages(messages)
    assert system == {"role": "system", "content": "Be brief."}
    assert user["role"] == "user" and user["name"] == "ann"
    image, text = user["content"]
    assert text == {"type": "text", "text": "What is this?"}
    header, payload = image["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    assert base64.b64decode(payload) == png


def test_an_image_without_text_has_no_empty_text_part() -> None:
    (user,) = vllm_inputs.openai_messages([base.ChatMessage("user", "", images=(base.ImagePart(b"x", "image/jpeg"),))])
    assert [part["type"] for part in user["content"]] == ["image_url"]


def test_completion_budget_fills_the_context_when_max_tokens_is_unset() -> None:
    assert vllm_inputs.completion_budget(prompt_tokens=100, max_tokens=None, max_model_len=512) == 412
    assert vllm_inputs.completion_budget(prompt_tokens=100, max_tokens=12, max_model_len=512) == 12
    assert vllm_inputs.completion_budget(prompt_tokens=100, max_tokens=412, max_model_len=512) == 412


@pytest.mark.parametrize("prompt, max_tokens", [(512, None), (600, 1), (100, 413)])
def test_over_the_context_is_context_length_exceeded(prompt: int, max_tokens: int | None) -> None:
    with pytest.raises(base.ContextLengthExceeded, match="maximum context length is 512 tokens"):
        vllm_inputs.completion_budget(prompt, max_tokens, 512)


def test_sampling_kwargs_carry_the_request() -> None:
    params = base.SamplingParams(max_tokens=5, temperature=0.2, top_p=0.9, stop=("\n",), seed=7)
    assert vllm_inputs.sampling_kwargs(params, 5) == {
        "max_tokens": 5, "temperature": 0.2, "top_p": 0.9, "stop": ["\n"], "seed": 7,
    }  # fmt: skip
    assert "seed" not in vllm_inputs.sampling_kwargs(base.SamplingParams(), 3)


@dataclasses.dataclass
class Response:
    """The fields mlx-lm's GenerationResponse and mlx-vlm's GenerationResult share."""

    text: str
    prompt_tokens: int
    generation_tokens: int
    finish_reason: str | None = None


def test_deltas_carry_cumulative_usage_and_the_finish_reason() -> None:
    responses = [Response("He", 5, 1), Response("", 5, 2), Response("llo", 5, 3), Response("!", 5, 4, "length")]
    out = list(mlx_generation.deltas(iter(responses), ()))
    assert [d.text for d in out] == ["He", "llo", "!"]
    assert out[-1] == base.Delta("!", 5, 4, "length")


def test_deltas_end_at_a_stop_string_and_close_the_engine() -> None:
    closed = []

    def engine():
        try:
            yield Response("one two", 3, 2)
            yield Response(" three", 3, 3)
            yield Response(" four", 3, 4)
        finally:
            closed.append(True)

    out = list(mlx_generation.deltas(engine(), (" thr",)))
    assert "".join(d.text for d in out) == "one two"
    assert out[-1].finish_reason == "stop" and out[-1].completion_tokens == 3
    assert closed == [True]


def test_deltas_stopping_early_logs_how_far_it_got(caplog: pytest.LogCaptureFixture) -> None:
    stream = mlx_generation.deltas(iter([Response("a", 1, 1), Response("b", 1, 2)]), ())
    next(stream)
    with caplog.at_level("INFO"):
        stream.close()
    assert "stopped early after 1 completion tokens" in caplog.text


def test_context_length_reads_the_text_models_config(tmp_path: pathlib.Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 4096}}))
    assert mlx_generation.context_length(str(tmp_path)) == 4096
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    assert mlx_generation.context_length(str(tmp_path)) == 2048
    assert mlx_generation.context_length(str(tmp_path / "missing")) is None


def test_mlx_budget() -> None:
    # The request's max_tokens is checked against the context, a configured default is capped.
    assert mlx_generation.budget(10, None, None, 100) == 90
    assert mlx_generation.budget(10, None, 500, 100) == 90
    assert mlx_generation.budget(10, None, 7, 100) == 7
    assert mlx_generation.budget(10, 50, 7, 100) == 50
    assert mlx_generation.budget(10, None, None, None) == 256
    with pytest.raises(base.ContextLengthExceeded):
        mlx_generation.budget(10, 95, None, 100)


def test_top_p_one_means_no_nucleus_filter() -> None:
    assert mlx_generation.top_p(1.0) == 0.0
    assert mlx_generation.top_p(0.9) == 0.9


def generation_step(
    prompt: list[int],
    model: object,
    *,
    max_tokens: int = 256,
    kv_bits: int | None = None,
    prefill_step_size: int = 2048,
    **kwargs: object,
) -> None:
    """Shaped like mlx-lm's generate_step: the engine signature extraArgs are checked against."""


def test_extra_args_become_typed_engine_kwargs() -> None:
    kwargs = mlx_generation.engine_kwargs(
        ("kv_bits=8", "--prefill-step-size=512"), generation_step, frozenset({"max_tokens"})
    )
    assert kwargs == {"kv_bits": 8, "prefill_step_size": 512}


@pytest.mark.parametrize(
    "extra, message",
    [
        (("kv_bitz=8",), "kv_bitz not accepted by .*generation_step; accepted: kv_bits, prefill_step_size"),
        (("max_tokens=5",), "max_tokens not accepted"),  # the request sets it
        (("--kv-bits",), "not of the form key=value"),
    ],
)
def test_bad_extra_args_fail_the_load_naming_them(extra: tuple[str, ...], message: str) -> None:
    with pytest.raises(base.BackendError, match=message):
        mlx_generation.engine_kwargs(extra, generation_step, frozenset({"max_tokens", "prompt", "model"}))
