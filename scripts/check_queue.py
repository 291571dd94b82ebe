"""Per shard: backlog, pending, consumer-group lag, dead letters and up to 20 events.

Usage: .venv/bin/python scripts/check_queue.py [--count N]   (or: make check-queue)
Reads REDIS_URL, REGIONS and BOARD like the service (no JWT_SECRET needed).
"""

from __future__ import annotations

import argparse
import asyncio

from redis.exceptions import ResponseError

from leaderboard.actors.router import shard_for
from leaderboard.keys import WRITERS_GROUP, Keys
from leaderboard.redis_client import connect
from leaderboard.settings import StoreSettings


async def report(count: int) -> None:
    store = StoreSettings()
    keys = Keys(store.board)
    redis = connect(store.redis_url)
    for shard in sorted({shard_for(r) for r in store.region_list}):
        name = keys.stream(shard)
        backlog = await redis.xlen(name)
        dead = await redis.xlen(keys.dead(shard))
        try:
            groups = {g["name"]: g for g in await redis.xinfo_groups(name)}
        except ResponseError:
            groups = {}
        g = groups.get(WRITERS_GROUP)
        pending = g["pending"] if g else "-"
        lag = g.get("lag") if g else "-"
        consumers = g["consumers"] if g else 0
        print(f"{shard}: stream {name}  backlog={backlog}  pending={pending}  lag={lag}  "
              f"consumers={consumers}  dead_letters={dead}")
        for entry_id, fields in await redis.xrange(name, count=count):
            print(f"  {entry_id} {fields}")
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20, help="events to show per shard")
    asyncio.run(report(parser.parse_args().count))


if __name__ == "__main__":
    main()
