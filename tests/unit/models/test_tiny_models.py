"""The tiny-model generators: tokenizer, weight layout, GGUF permutation, CLI contract, determinism."""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from llmserver_runtime.tiny_models import bpe, cli, gguf_model, llama
from testkit.models import tiny_hf_causal  # noqa: F401 - session fixture

pytestmark = pytest.mark.timeout(300)


def _run_cli(*args: str, python_prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{python_prelude}\nimport sys\nfrom llmserver_runtime import cli\nsys.exit(cli.main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=240, check=False
    )


def _digest(directory: pathlib.Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_bpe_has_chatml_specials_as_single_tokens_and_round_trips() -> None:
    tokenizer = bpe.train()
    assert tokenizer.get_vocab_size() == bpe.VOCAB_SIZE
    text = "<|im_start|>user\nHello, wörld! 42 {x}<|im_end|>\n"
    encoding = tokenizer.encode(text)
    assert encoding.tokens[0] == bpe.IM_START
    assert bpe.IM_END in encoding.tokens
    assert tokenizer.decode(encoding.ids, skip_special_tokens=False) == text
    tokens, merges = bpe.vocab_and_merges(tokenizer)
    assert tokens[: len(bpe.SPECIAL_TOKENS)] == list(bpe.SPECIAL_TOKENS)
    assert all(len(merge.split(" ")) == 2 for merge in merges)
    assert len(tokens) == len(set(tokens)) == bpe.VOCAB_SIZE


def test_random_weights_are_seeded_and_shaped_like_hf_llama() -> None:
    shape = llama.LlamaShape(vocab_size=450)
    first, again, other = (llama.random_weights(shape, seed) for seed in (0, 0, 1))
    assert first.keys() == again.keys()
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["lm_head.weight"], other["lm_head.weight"])
    assert shape.head_dim == 64  # vLLM's CPU attention refuses smaller heads
    assert first["model.layers.0.self_attn.k_proj.weight"].shape == (64, 128)
    assert first["model.layers.1.mlp.down_proj.weight"].shape == (128, 256)
    assert all(array.dtype == np.float32 for array in first.values())


def test_permute_rows_interleaves_rotary_halves_per_head() -> None:
    # One head of dim 4: HF pairs rows (0,2) and (1,3) for rotation; llama.cpp wants them adjacent.
    rows = np.arange(4, dtype=np.float32).reshape(4, 1)
    assert gguf_model.permute_rows(rows, n_head=1).ravel().tolist() == [0, 2, 1, 3]
    two_heads = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert gguf_model.permute_rows(two_heads, n_head=2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_gguf_tensors_cover_every_weight_once() -> None:
    shape = llama.LlamaShape(vocab_size=450)
    weights = llama.random_weights(shape, 0)
    tensors = gguf_model.gguf_tensors(shape, weights)
    assert len(tensors) == len(weights)
    assert np.array_equal(tensors["blk.1.attn_v.weight"], weights["model.layers.1.self_attn.v_proj.weight"])
    q = weights["model.layers.0.self_attn.q_proj.weight"]
    assert np.array_equal(tensors["blk.0.attn_q.weight"], gguf_model.permute_rows(q, 2))


def test_gguf_kind_needs_neither_torch_nor_transformers(tmp_path: pathlib.Path) -> None:
    # The README demo installs only llama-cpp + gguf + tokenizers + numpy.
    block = "import sys\nfor name in ('torch', 'transformers', 'safetensors'):\n    sys.modules[name] = None\n"
    result = _run_cli("tiny-model", "--kind", "gguf", "--out", str(tmp_path / "g"), python_prelude=block)
    assert result.returncode == 0, result.stderr
    served = pathlib.Path(result.stdout.strip().splitlines()[-1])
    assert served == (tmp_path / "g" / gguf_model.FILE_NAME).resolve()
    assert served.read_bytes()[:4] == b"GGUF"


def test_gguf_same_seed_gives_identical_files_across_processes(tmp_path: pathlib.Path) -> None:
    # Across processes: the BPE trainer runs in Rust, where hash seeds differ per process.
    outputs = []
    for attempt, seed in enumerate((7, 7, 8)):
        out = tmp_path / f"run{attempt}"
        result = _run_cli("tiny-model", "--kind", "gguf", "--out", str(out), "--seed", str(seed))
        assert result.returncode == 0, result.stderr
        outputs.append(_digest(out))
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


@pytest.mark.parametrize("kind", ["hf-causal", "hf-rerank"])
def test_hf_kinds_are_deterministic_from_the_seed(kind: str, tmp_path: pathlib.Path) -> None:
    # In-process (importing transformers per subprocess costs tens of seconds on 2 shared cores);
    # the tokenizer's cross-process determinism is covered by the GGUF test above.
    outputs = [_digest(cli.generate(kind, tmp_path / f"run{i}", seed)) for i, seed in enumerate((7, 7, 8))]
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"} <= outputs[0].keys()


def test_hf_causal_directory_layout(tiny_hf_causal: str) -> None:
    # tiny_hf_causal comes from the real CLI (testkit runs `llmserver-runtime tiny-model`).
    served = pathlib.Path(tiny_hf_causal)
    assert served.is_dir()
    config = json.loads((served / "config.json").read_text())
    assert (config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]) == (128, 2, 2)
    assert config["vocab_size"] == bpe.VOCAB_SIZE
    tokenizer_config = json.loads((served / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == bpe.IM_END
    assert "<|im_start|>" in tokenizer_config["chat_template"]
    assert 1_000_000 < (served / "model.safetensors").stat().st_size < 2_500_000


def test_unknown_kind_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    result = _run_cli("tiny-model", "--kind", "onnx", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "--kind" in result.stderr
