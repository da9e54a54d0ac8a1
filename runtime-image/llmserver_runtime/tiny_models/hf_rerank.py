"""A tiny random BERT cross-encoder (one relevance logit) with a WordPiece tokenizer.

No PyPI package ships a reranker model, so rerank is tested on this: it loads with transformers'
AutoModelForSequenceClassification and with sentence-transformers' CrossEncoder.
"""

from __future__ import annotations

import json
import os
import pathlib

import tokenizers
import torch
import transformers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from llmserver_runtime.tiny_models import bpe

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _vocabulary() -> list[str]:
    """Specials, every character (alone and as a continuation) and every corpus word, sorted.

    Built by hand rather than with WordPieceTrainer, whose tie-breaking changes from run to run:
    the same seed must give byte-identical files (test caches are keyed on that).
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: set[str] = set()
    for line in bpe.CORPUS.splitlines():
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
    chars = sorted({char for word in words for char in word})
    return [*SPECIALS, *chars, *(f"##{char}" for char in chars), *sorted(words - set(chars))]


def wordpiece() -> tokenizers.Tokenizer:
    """A lower-casing BERT WordPiece tokenizer over the shared inline corpus."""
    vocab = {token: index for index, token in enumerate(_vocabulary())}
    tokenizer = tokenizers.Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


def write(out_dir: pathlib.Path, seed: int) -> pathlib.Path:
    """Writes the cross-encoder directory; returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=wordpiece(),
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(str(out_dir))
    config_path = out_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"  # readable by transformers 4.x too
    config_path.write_text(json.dumps(tokenizer_config, indent=2, sort_keys=True) + "\n")

    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        architectures=["BertForSequenceClassification"],
        id2label={0: "LABEL_0"},
        label2id={"LABEL_0": 0},
        # Far above BERT's 0.02 so random scores spread visibly (about 0.25-0.98 after the sigmoid).
        initializer_range=0.3,
    )
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(str(out_dir))
    os.chmod(out_dir / "model.safetensors", 0o644)
    return out_dir
