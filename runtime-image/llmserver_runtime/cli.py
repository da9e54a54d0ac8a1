"""`llmserver-runtime`: what the runtime image runs. Subcommands live in their own modules and are
imported only when invoked, so `llmserver-runtime gateway` never imports an ML library."""

from __future__ import annotations

import importlib

import click

# subcommand -> module exposing a click command named `command`
SUBCOMMANDS: dict[str, str] = {
    "serve": "llmserver_runtime.server.cli",
    "download": "llmserver_runtime.download.cli",
    "gateway": "llmserver_gateway.cli",
    "tiny-model": "llmserver_runtime.tiny_models.cli",
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
    """The llmserver runtime: OpenAI server, gateway, model downloader, tiny-model generator."""
