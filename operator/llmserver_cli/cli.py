"""`llmserver`: the user CLI. Each subcommand lives in its own module under `commands/` and is
imported only when invoked, so `llmserver --help` stays fast."""

from __future__ import annotations

import importlib

import click

# subcommand -> module exposing a click command named `command`
SUBCOMMANDS: dict[str, str] = {
    "add-server": "llmserver_cli.commands.add_server",
    "agent": "llmserver_cli.commands.agent",
    "agent-credentials": "llmserver_cli.commands.agent_credentials",
    "clear-cache": "llmserver_cli.commands.clear_cache",
    "download-model": "llmserver_cli.commands.download_model",
    "inspect": "llmserver_cli.commands.inspect",
    "list-loaded": "llmserver_cli.commands.list_loaded",
    "load-model": "llmserver_cli.commands.load_model",
    "remove-server": "llmserver_cli.commands.remove_server",
    "render": "llmserver_cli.commands.render",
    "start": "llmserver_cli.commands.up",  # the seed's name for `up`
    "unload-model": "llmserver_cli.commands.unload_model",
    "up": "llmserver_cli.commands.up",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, subcommands: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = subcommands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            return importlib.import_module(self._lazy[name]).command
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, subcommands=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run LLMServers on Kubernetes (current kubeconfig context) or on this machine (`llmserver up`)."""
