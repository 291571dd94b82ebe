"""The hand-made RESP packer must produce exactly what redis-py's own packer does."""

from __future__ import annotations

from redis.asyncio.connection import Connection

from leaderboard.redis_client import pack


def test_pack_matches_redis_py() -> None:
    args = ["EVALSHA", "abc", 3, "lb:default:user:ünï", -42, 0, 2**53 - 1, b"\x00raw\r\n", ""]
    expected = b"".join(Connection().pack_command(*args))
    assert pack(args) == expected
