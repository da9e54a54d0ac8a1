"""One module per `llmserver` subcommand; each exposes a click command named `command`."""
