"""The guarded resolver: every address a name resolves to is checked; listed names are trusted."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import aiohttp.abc
import pytest

from llmserver_api import proxy_policy
from llmserver_gateway import guard


class _Answers(aiohttp.abc.AbstractResolver):
    """A DNS stand-in answering fixed addresses and recording the names asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        self.asked.append(host)
        return [{"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
                for a in self.addresses]

    async def close(self) -> None:
        pass


def _resolve(policy: proxy_policy.HostPolicy, inner: _Answers, host: str) -> list:
    return asyncio.run(guard.GuardedResolver(policy, inner).resolve(host, 443))


def test_public_answers_pass_and_the_name_is_resolved_as_absolute() -> None:
    inner = _Answers("93.184.216.34", "2606:2800:220:1::1")
    assert [a["host"] for a in _resolve(proxy_policy.HostPolicy(), inner, "api.example.com")] == [
        "93.184.216.34", "2606:2800:220:1::1"]
    assert inner.asked == ["api.example.com."]  # no cluster search domains


@pytest.mark.parametrize("bad", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "::1", "::ffff:10.0.0.1"])
def test_one_refused_address_refuses_the_whole_answer(bad: str) -> None:
    with pytest.raises(guard.ProxyRefused):
        _resolve(proxy_policy.HostPolicy(), _Answers("93.184.216.34", bad), "rebind.example.com")


def test_a_listed_name_is_trusted_and_resolved_as_given() -> None:
    inner = _Answers("10.0.0.9")
    answers = _resolve(proxy_policy.HostPolicy.parse(["ollama"]), inner, "ollama")
    assert [a["host"] for a in answers] == ["10.0.0.9"] and inner.asked == ["ollama"]


def test_refusal_is_found_behind_aiohttps_wrapping() -> None:
    refused = guard.ProxyRefused("no")
    try:
        try:
            raise refused
        except OSError as exc:
            raise aiohttp.ClientConnectionError("dns") from exc
    except aiohttp.ClientConnectionError as wrapped:
        assert guard.refusal(wrapped) is refused
    assert guard.refusal(ValueError()) is None
