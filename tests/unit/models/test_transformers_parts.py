"""Pure parts of the transformers backend: capability detection, Auto-class choice, context length,
sentence-transformers pooling settings, load arguments, incremental decoding and sampling."""

from __future__ import annotations

import json
import pathlib
import types

import pytest
import torch
import transformers

import llmserver_api
from llmserver_backends import base
from llmserver_backends import transformers_generation as generation
from llmserver_backends import transformers_loading as loading
from llmserver_runtime.tiny_models import bpe

pytestmark = pytest.mark.timeout(120)
Cap = llmserver_api.Capability


def _config(*archs: str, **fields: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(architectures=list(archs), **fields)


@pytest.mark.parametrize(
    ("archs", "expected"),
    [
        (("LlamaForCausalLM",), {Cap.TEXT_GENERATION}),
        (("GPT2LMHeadModel",), {Cap.TEXT_GENERATION}),
        (("BertForSequenceClassification",), {Cap.RERANK}),
        (("BertModel",), {Cap.EMBEDDINGS}),
    ],
)
def test_capabilities_follow_the_declared_architecture(archs, expected, tmp_path: pathlib.Path) -> None:
    assert loading.detect_capabilities(_config(*archs), str(tmp_path)) == expected


def test_sentence_transformers_layout_means_embeddings_and_unknown_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(base.BackendError, match="set the capabilities explicitly"):
        loading.detect_capabilities(_config("T5ForConditionalGeneration"), str(tmp_path))
    (tmp_path / "modules.json").write_text("[]")
    assert loading.detect_capabilities(_config(), str(tmp_path)) == {Cap.EMBEDDINGS}


def test_head_choice_and_refusals() -> None:
    causal, encoder = _config("LlamaForCausalLM"), _config("BertModel")
    assert loading.choose_head(frozenset({Cap.TEXT_GENERATION, Cap.EMBEDDINGS}), causal) is loading.Head.CAUSAL_LM
    assert loading.choose_head(frozenset({Cap.EMBEDDINGS}), causal) is loading.Head.CAUSAL_LM
    assert loading.choose_head(frozenset({Cap.EMBEDDINGS}), encoder) is loading.Head.ENCODER
    assert loading.choose_head(frozenset({Cap.RERANK}), encoder) is loading.Head.SEQUENCE_CLASSIFICATION
    with pytest.raises(base.BackendError, match="Vision"):
        loading.choose_head(frozenset({Cap.VISION}), causal)
    with pytest.raises(base.BackendError, match="cannot also serve"):
        loading.choose_head(frozenset({Cap.RERANK, Cap.EMBEDDINGS}), encoder)


def test_context_length_is_the_smaller_real_limit() -> None:
    assert loading.context_length(_config(max_position_embeddings=2048), 1024) == 1024
    assert loading.context_length(_config(max_position_embeddings=512), int(1e30)) == 512  # tokenizer: no limit
    assert loading.context_length(_config(n_positions=1024), None) == 1024
    nested = _config(text_config=types.SimpleNamespace(max_position_embeddings=4096))
    assert loading.context_length(nested, None) == 4096
    assert loading.context_length(_config(), None) is None


def test_pooling_settings_come_from_the_sentence_transformers_files(tmp_path: pathlib.Path) -> None:
    assert loading.sentence_transformers_settings(str(tmp_path)) == ("mean", None)
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps([{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    assert loading.sentence_transformers_settings(str(tmp_path)) == ("cls", 128)


def test_model_kwargs_map_dtype_quantisation_and_remote_code() -> None:
    cpu = loading.model_kwargs({}, trust_remote_code=False, cuda=False)
    assert cpu == {"dtype": torch.float32, "trust_remote_code": False, "device_map": "cpu"}
    gpu = loading.model_kwargs({"load_in_4bit": True}, trust_remote_code=True, cuda=True)
    assert gpu["dtype"] == "auto" and gpu["trust_remote_code"] is True and gpu["device_map"] == "cuda"
    assert gpu["quantization_config"].load_in_4bit and gpu["quantization_config"].bnb_4bit_compute_dtype == torch.bfloat16
    eight = loading.model_kwargs({"load_in_8bit": True, "dtype": "bfloat16"}, trust_remote_code=False, cuda=False)
    assert eight["dtype"] == torch.bfloat16 and eight["quantization_config"].load_in_8bit
    with pytest.raises(ValueError, match="mutually exclusive"):
        loading.model_kwargs({"load_in_4bit": True, "load_in_8bit": True}, trust_remote_code=False, cuda=False)
    with pytest.raises(ValueError, match="dtype must be one of"):
        loading.model_kwargs({"dtype": "fp8"}, trust_remote_code=False, cuda=False)


@pytest.fixture(scope="module")
def tokenizer() -> transformers.PreTrainedTokenizerFast:
    return transformers.PreTrainedTokenizerFast(tokenizer_object=bpe.train(), eos_token=bpe.IM_END)


def test_incremental_decoder_never_splits_a_character(tokenizer) -> None:
    text = "Hé wörld 😀 done"
    ids = tokenizer(text).input_ids
    assert len(ids) > len(text.split())  # the rare characters are several byte tokens
    decoder = generation.IncrementalDecoder(tokenizer)
    pieces = [decoder.add(token) for token in ids] + [decoder.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)


def test_incremental_decoder_flushes_an_incomplete_character_once(tokenizer) -> None:
    first_byte_of_emoji = tokenizer("😀").input_ids[0]
    decoder = generation.IncrementalDecoder(tokenizer)
    assert decoder.add(first_byte_of_emoji) == ""
    assert decoder.flush() == "\ufffd"
    assert decoder.flush() == ""


def test_sampling_greedy_nucleus_and_seed() -> None:
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0])
    greedy = base.SamplingParams(temperature=0.0)
    assert generation.sample(logits, greedy, torch.Generator().manual_seed(0)) == 1
    narrow = base.SamplingParams(temperature=1.0, top_p=0.01)  # only the top token survives
    assert {generation.sample(logits, narrow, torch.Generator().manual_seed(s)) for s in range(20)} == {1}
    free = base.SamplingParams(temperature=5.0)

    def draws(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return [generation.sample(logits, free, generator) for _ in range(30)]

    assert draws(1) == draws(1)
    assert len(set(draws(1))) > 1


def test_extra_args_cannot_switch_on_remote_code() -> None:
    from llmserver_backends import registry

    config = base.BackendConfig(model_path="/nowhere", served_model_name="m", extra_args=("trust_remote_code=true",))
    with pytest.raises(ValueError, match="trustRemoteCode"):
        registry.create("transformers", config)
    allowed = base.BackendConfig(model_path="/nowhere", served_model_name="m", extra_args=("attn_implementation=eager",))
    assert registry.create("transformers", allowed).capabilities == frozenset()  # detected at load
