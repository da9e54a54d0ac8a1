"""Tiny random-weight models generated offline, deterministically from a seed.

Model hubs are unreachable in tests and in the offline demo, so every engine is exercised on
models written here: a llama-arch GGUF (llama.cpp), the same weights as a Hugging Face Llama
directory (transformers, vLLM, mlx-lm), a tiny BERT cross-encoder (rerank) and a tiny LLaVA
(mlx-vlm, written by `vlm`). The GGUF path needs only numpy, gguf and tokenizers, so the demo
environment (llama-cpp only) can produce it without torch or transformers.
"""
