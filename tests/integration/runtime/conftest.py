"""Live `serve` processes shared per module (starting one costs about a second)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from testkit import runtime_server


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime_server.RuntimeServer]:
    """The fake backend with every capability, no delays."""
    tmp: pathlib.Path = tmp_path_factory.mktemp("fake")
    with runtime_server.start(tmp, "fake", "unused", "tiny") as server:
        yield server
