"""The gateway runs on uvloop where it is installed (it is a dependency on Linux and macOS)."""

from __future__ import annotations

import asyncio
import builtins

import uvloop

from llmserver_gateway import cli


def test_gateway_uses_uvloop_when_installed() -> None:
    loop = cli._event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_gateway_falls_back_to_the_stdlib_loop_without_uvloop(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name, *args, **kwargs):
        if name == "uvloop":
            raise ImportError("uvloop is not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    loop = cli._event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
