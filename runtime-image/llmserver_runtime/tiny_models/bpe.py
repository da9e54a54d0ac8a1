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

# ChatML, as Qwen and many others use it. Content may be a string or OpenAI-style parts. With
# `tools`, Qwen2.5's tool format: the tools as JSON lines in a system turn (after any system
# message's text), calls written as `<tool_call>{"name", "arguments"}</tool_call>`, tool results
# as `<tool_response>` blocks in a user turn. Without tools the output is plain ChatML.
_CONTENT = (
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\\n' }}"
    "{% if messages[0]['role'] == 'system' %}{% set message = messages[0] %}" + _CONTENT + "{{ '\\n\\n' }}{% endif %}"
    "{{ '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{% for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{% endfor %}"
    "{{ '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, "
    "\\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}"
    "{% if tools and loop.first and message['role'] == 'system' %}"
    "{% elif message['role'] == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}{{ '<|im_start|>user' }}{% endif %}"
    "{{ '\\n<tool_response>\\n' }}" + _CONTENT + "{{ '\\n</tool_response>' }}"
    "{% if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{ '<|im_end|>\\n' }}{% endif %}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}" + _CONTENT +
    "{% for call in message.get('tool_calls') or [] %}{% set call = call.get('function') or call %}"
    "{% if loop.first and message['content'] %}{{ '\\n' }}{% endif %}"
    "{{ '<tool_call>\\n{\\\"name\\\": \\\"' + call['name'] + '\\\", \\\"arguments\\\": ' }}"
    "{% if call['arguments'] is string %}{{ call['arguments'] }}{% else %}{{ call['arguments'] | tojson }}{% endif %}"
    "{{ '}\\n</tool_call>' }}{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor %}"
    "{{ '<|im_end|>' + '\\n' }}"
    "{% endif %}"
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
