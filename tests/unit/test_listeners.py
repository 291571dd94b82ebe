"""The listening-socket check behind the loopback-only tests, on sockets of this process."""

from __future__ import annotations

import socket

import psutil
import pytest

from leaderboard.exposure import Listener, listeners, off_loopback, with_descendants


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.5", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.2", False), ("::ffff:192.0.2.2", False),
])
def test_loopback_or_not(address: str, loopback: bool) -> None:
    assert Listener(1, "x", address, 80).loopback is loopback


def test_finds_this_process_sockets_and_flags_the_wildcard_one() -> None:
    with socket.socket() as local, socket.socket() as everywhere:
        local.bind(("127.0.0.1", 0))
        everywhere.bind(("0.0.0.0", 0))
        local.listen()
        everywhere.listen()
        wide_port = everywhere.getsockname()[1]
        found = listeners(with_descendants([psutil.Process().pid]))
        ports = {s.port for s in found}
        assert {local.getsockname()[1], wide_port} <= ports
        assert [s.port for s in off_loopback(found)] == [wide_port]
        assert off_loopback(found, allowed=[wide_port]) == []
