"""The Mac agent (`llmserver agent`): registers an AppleNode and hosts its MLX models."""
