"""Fixtures for testing the API emulator itself (helpers: testkit.emulator_client)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testkit import emulator


@pytest.fixture(scope="module")
def kube() -> Iterator[emulator.KubeEmulator]:
    with emulator.KubeEmulator(crds=emulator.project_crds()) as server:
        yield server
        assert not server.gc.errors, server.gc.errors
