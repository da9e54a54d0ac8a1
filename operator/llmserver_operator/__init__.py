"""The llmserver operator: kopf handlers, pure builders and status, the `llmserver` CLI, local mode."""
