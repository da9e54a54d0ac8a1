"""Fixtures: one fake cluster (emulator + kubelet simulator + real operator) per module, a namespace per test."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from testkit import fake_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[fake_cluster.FakeCluster]:
    with fake_cluster.FakeCluster() as running:
        yield running
        assert running.kubelet is not None and not running.kubelet.errors, running.kubelet.errors


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    """A namespace named after the test, so tests sharing a cluster never see each other's objects."""
    name = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")
    return name[:63].rstrip("-")
