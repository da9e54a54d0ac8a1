"""Fixtures of the autoscaler tests: stand-in gateway replicas (testkit.gateway_load), a namespace per test."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from testkit import gateway_load


@pytest.fixture
def load_servers() -> Iterator[gateway_load.LoadServers]:
    servers = gateway_load.LoadServers()
    yield servers
    servers.close()


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    """A namespace named after the test, so tests sharing a cluster never see each other's objects."""
    name = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")
    return name[:63].rstrip("-")
