"""`llmserver-runtime download`: Hugging Face repo (or single file) into the model cache, with
skip-when-complete, retries, a clear one-line failure and progress in the LLMServer's status."""
