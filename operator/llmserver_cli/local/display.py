"""How local mode shows itself: a live rich table on a terminal, one line per change otherwise
(logs, CI, tests)."""

from __future__ import annotations

import rich.console
import rich.live
import rich.table
import rich.text

from llmserver_api.units import human_bytes
from llmserver_cli.local import state

PHASE_STYLES = {
    "Ready": "green",
    "Failed": "bold red",
    "Unloaded": "dim",
    "Cold": "blue",  # autoscaled to zero replicas: its next request loads it
    "Unloading": "dim",
    "Downloading": "cyan",
    "Starting": "yellow",
    "Pending": "yellow",
}


def _human_bytes(count: int | None) -> str:
    return "" if count is None else human_bytes(count)


def detail(server: state.ServerState) -> str:
    """The message column: the error, progress or where it serves."""
    if server.phase == "Downloading" and server.download_bytes is not None:
        done = _human_bytes(server.download_bytes)
        if server.download_total:
            percent = 100 * server.download_bytes // server.download_total
            return f"{server.message}: {done} / {_human_bytes(server.download_total)} ({percent}%)"
        return f"{server.message}: {done}"
    return server.message


def table(snapshot: state.LocalState, title: str | None = None) -> rich.table.Table:
    """One row per server."""
    view = rich.table.Table(title=title, title_justify="left", expand=False)
    for column in ("NAME", "MODEL", "MODE", "BACKEND", "PHASE", "DETAIL"):
        view.add_column(column, overflow="fold")
    for server in snapshot.servers:
        shown = "Cold" if server.cold else server.phase  # scaled to zero, loaded by its next request
        phase = rich.text.Text(shown, style=PHASE_STYLES.get(shown, ""))
        view.add_row(server.name, server.model, server.mode, server.backend, phase, detail(server))
    return view


class Display:
    """Renders supervisor snapshots: rich Live when attached to a terminal, plain lines otherwise."""

    def __init__(self, console: rich.console.Console, live: bool) -> None:
        self.console = console
        self._live = rich.live.Live(console=console, auto_refresh=False, transient=False) if live else None
        self._seen: dict[str, tuple[str, str]] = {}

    def __enter__(self) -> Display:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, snapshot: state.LocalState) -> None:
        """Called by the supervisor on every change."""
        if self._live is not None:
            title = f"llmserver up: OpenAI API on {snapshot.gateway_url}/v1 (Ctrl-C stops everything)"
            self._live.update(table(snapshot, title), refresh=True)
            return
        for server in snapshot.servers:
            now = (server.phase, server.message)
            if self._seen.get(server.name) != now:
                self._seen[server.name] = now
                self.console.print(f"{server.name} ({server.model}): {server.phase}" + (f": {server.message}" if server.message else ""), markup=False, highlight=False)
