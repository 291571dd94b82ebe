"""CPU time per request of the HTTP layer itself (``serve/asgi.py`` + the route table), without
Ray: ``App.__call__`` on ``GET /rank/{id}`` with a context whose read answers at once.

Usage: .venv/bin/python scripts/bench_asgi.py [REQUESTS]
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from leaderboard.serve.asgi import App
from leaderboard.serve.routes import ROUTES

ENTRY = b'{"rank":1,"user_id":"u","name":"n","region":"EU","score":5}'
SCOPE = {"type": "http", "method": "GET", "path": "/rank/bench-000001", "root_path": "",
         "query_string": b"region=EU", "client": ("127.0.0.1", 5),
         "headers": [(b"host", b"x"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]}


class Reads:
    """The part of ``Context`` a rank read uses."""

    def region(self, name: str) -> str:
        return name.upper()

    async def read(self, _: Any) -> bytes:
        return ENTRY


async def main(n: int) -> None:
    app = App(Reads(), ROUTES, lambda *_: None)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: dict[str, Any]) -> None:
        return None

    for _ in range(1000):  # warm-up
        await app(SCOPE, receive, send)
    start = time.process_time()
    for _ in range(n):
        await app(SCOPE, receive, send)
    print(f"{(time.process_time() - start) / n * 1e6:.1f} µs of CPU per request ({n:,} requests)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
