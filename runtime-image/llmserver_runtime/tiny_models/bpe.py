"""The byte-level BPE tokenizer shared by the tiny causal models (HF, GGUF, VLM).

Trained with `tokenizers` on a small inline corpus, so it needs no download and no transformers.
The GPT-2 byte-level pre-tokenizer is what llama.cpp calls `gpt-2`, which lets the GGUF copy
tokenize exactly like the Hugging Face copy.
"""

from __future__ import annotations

import json
from typing import Any

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
VOCAB_SIZE = 450

# ChatML, as Qwen and many others use it. Content may be a string or OpenAI-style parts.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = """\
The quick brown fox jumps over the lazy dog. A tiny model is still a model: it has a tokenizer,
weights, a configuration and a chat template, and it answers every request, even if the answer
makes no sense. Hello, how are you today? I am fine, thank you. What is the capital of France?
The capital of France is Paris. What is two plus two? Two plus two is four.
Kubernetes runs containers in pods. An operator watches custom resources and reconciles them
into deployments, services and jobs. The gateway routes each request by model name to a ready
endpoint, and the runtime serves an OpenAI-compatible API for chat, completions, embeddings and
rerank. Tokens are counted for every response, and streaming responses arrive chunk by chunk.
You are a helpful assistant. Please answer the question below in one short sentence.
The weather is sunny and warm. The river flows to the sea. Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100.
Once upon a time there was a little server that wanted to generate text as fast as it could.
It loaded its weights, warmed up, and said: ready! Then the users came with their questions,
and the server answered them one token at a time, counting every token it produced.
def main(): print("hello world") # code is text too; so are {braces}, [brackets] and <tags>.
"""


def train() -> tokenizers.Tokenizer:
    """Trains the tokenizer. Deterministic: the trainer breaks count ties by pair order."""
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    return tokenizer


def vocab_and_merges(tokenizer: tokenizers.Tokenizer) -> tuple[list[str], list[str]]:
    """Tokens in id order and merges as "a b" strings (the GGUF layout)."""
    model: dict[str, Any] = json.loads(tokenizer.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, merges


def special_id(tokenizer: tokenizers.Tokenizer, token: str) -> int:
    """Id of a special token (they are always in the trained vocabulary)."""
    index = tokenizer.token_to_id(token)
    if index is None:  # pragma: no cover - the trainer always adds them
        raise ValueError(f"special token {token!r} missing from the vocabulary")
    return index
