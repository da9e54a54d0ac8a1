"""`llmserver-runtime download`: a Hugging Face repo (or single file), an S3 key or prefix, or one
URL into the model cache, with skip-when-complete, resume, retries, a checksum check of every file,
a clear one-line failure and progress in the LLMServer's status."""
