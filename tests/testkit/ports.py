"""Free loopback ports for the servers tests start (one helper for every test and testkit module).

A port is only free until someone takes it: the child process binds it a moment after we chose
it. A port the kernel hands out for `bind(0)` lies in the ephemeral range, the same range every
outgoing connection draws its local port from, so under load a connection made in between (any
test's client, an engine, pip) could take it and the child failed with "address already in use"
(seen in CI). So ports come from below the ephemeral range, where only explicit binds go, picked
at random by a system RNG (tests seed `random`, and processes seeded alike would pick alike),
never twice in one process, and checked free now.
"""

from __future__ import annotations

import random
import socket

_LOWEST = 20000  # below: well-known services and what other software on the machine may pin
_PICKER = random.SystemRandom()
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as text:
            return int(text.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere the kernel's pick below is the fallback anyway


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, outside the ephemeral range when there is room."""
    highest = _ephemeral_low() - 1
    if highest - _LOWEST >= 1000:
        for _ in range(200):
            port = _PICKER.randint(_LOWEST, highest)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
