"""Renders the chart once per value set for the whole module set (helm runs are the slow part)."""

from __future__ import annotations

from typing import Any

import pytest

from testkit import helm


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """value-set name -> every object `helm template` renders for it (CRDs included)."""
    return {name: helm.template(values, include_crds=True) for name, values in helm.VALUE_SETS.items()}
