"""Pure builders: an LLMServer (and the operator settings) in, Kubernetes manifest dicts out.

No API client, no clock, no randomness: the same spec always renders the same objects, so the
operator can compare hashes instead of diffing live objects, and `llmserver render` shows exactly
what the operator would write. One module per child kind, plus `engine_args` for the per-backend
command lines and `plan` that lists every child of one LLMServer.
"""
