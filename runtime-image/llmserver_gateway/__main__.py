"""`python -m llmserver_gateway` is `llmserver-gateway` (also `llmserver-runtime gateway`)."""

from llmserver_gateway import cli

if __name__ == "__main__":
    cli.command()
