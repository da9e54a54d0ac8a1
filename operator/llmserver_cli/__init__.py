"""The `llmserver` command: cluster subcommands, local mode (`llmserver up`) and the Mac agent."""
