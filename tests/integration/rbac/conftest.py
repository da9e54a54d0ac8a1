"""What the RBAC audits share: every resource request the API emulator receives, recorded."""

from __future__ import annotations

from typing import Any

import pytest

from testkit import emulator_http, rbac


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[rbac.Request]:
    """Every resource request the emulators started in this test receive, as RBAC attributes."""
    requests: list[rbac.Request] = []
    original = emulator_http.Api.handle

    async def handle(self: emulator_http.Api, request: Any) -> Any:
        info = rbac.request_info(request.method, request.path, dict(request.query))
        if info is not None:
            requests.append(info)
        return await original(self, request)

    monkeypatch.setattr(emulator_http.Api, "handle", handle)
    return requests
