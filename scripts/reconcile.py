"""Compare each board in Redis with Postgres, repair drift (the higher version wins), report.

Usage: .venv/bin/python scripts/reconcile.py [--dry-run]   (or scripts/reconcile)
Reads REDIS_URL, REDIS_SHARDS, the PG* variables / DATABASE_URL and BOARD like the service;
with several Redis instances each is compared for the boards it holds.
Exit status: 0 when nothing drifted, 1 when drift was found (and, unless --dry-run, fixed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from leaderboard.keys import Keys
from leaderboard.reconcile import reconcile_all
from leaderboard.settings import StoreSettings
from leaderboard.shards import Topology


async def main(dry_run: bool) -> int:
    store = StoreSettings()
    keys = Keys(store.board)
    pg = await asyncpg.create_pool(store.dsn(), min_size=1, max_size=2)
    assert pg is not None
    try:
        report = await reconcile_all(Topology.of(store), pg, keys, dry_run=dry_run)
    finally:
        await pg.close()
    print(f"board {keys.board_name}:")
    for line in report.lines(fixed=not dry_run):
        print("  " + line)
    return 1 if report.drift else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    sys.exit(asyncio.run(main(parser.parse_args().dry_run)))
