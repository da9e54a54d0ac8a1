"""How other `llmserver` commands talk to a running `llmserver up`: read its state file, call its
loopback control endpoint with the token found there (stdlib only: these are one-shot calls)."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request

from llmserver_cli.local import control, state


class NotRunning(Exception):
    """No `llmserver up` runs with this state directory."""


class ControlError(Exception):
    """The running `llmserver up` refused or failed the request."""


def running(state_file: pathlib.Path) -> state.LocalState:
    """The state of the running `llmserver up`; raises NotRunning."""
    current = state.read(state_file)
    if current is None:
        raise NotRunning(f"no `llmserver up` is running (no live state in {state_file})")
    return current


def act(state_file: pathlib.Path, name: str, action: str, timeout: float = 30.0) -> state.ServerState:
    """Asks the running `llmserver up` to `load` or `unload` server `name`; returns its new state."""
    current = running(state_file)
    if not current.control_url:
        raise ControlError("the running `llmserver up` has no control endpoint yet; try again")
    request = urllib.request.Request(
        f"{current.control_url}/servers/{name}/{action}",
        method="POST",
        headers={control.TOKEN_HEADER: current.token},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return state.ServerState.model_validate(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = str(error)
        raise ControlError(message) from error
    except (urllib.error.URLError, OSError) as error:
        raise ControlError(f"cannot reach the running `llmserver up`: {error}") from error
