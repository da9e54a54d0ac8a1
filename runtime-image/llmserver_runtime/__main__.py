"""`python -m llmserver_runtime` is `llmserver-runtime`."""

from llmserver_runtime import cli

if __name__ == "__main__":
    cli.main()
