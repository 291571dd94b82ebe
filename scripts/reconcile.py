"""Compare each board in Redis with Postgres, repair drift (the higher version wins), report.

Usage: .venv/bin/python scripts/reconcile.py [--dry-run] [--board B]   (or scripts/reconcile)
Every board's live season by default (ended seasons live in their archive, not in Redis);
``--board B`` one board's.
Reads REDIS_URL, REDIS_SHARDS, the PG* variables / DATABASE_URL and BOARD like the service;
with several Redis instances each is compared for the boards it holds.
Exit status: 0 when nothing drifted, 1 when drift was found (and, unless --dry-run, fixed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import asyncpg

from leaderboard.boards import DEFAULT, Board
from leaderboard.keys import Keys
from leaderboard.reconcile import reconcile_all
from leaderboard.settings import StoreSettings
from leaderboard.shards import Topology


async def main(dry_run: bool, only: str | None) -> int:
    store = StoreSettings()
    keys = Keys(store.board)
    pg = await asyncpg.create_pool(store.dsn(), min_size=1, max_size=2)
    assert pg is not None
    drift = 0
    try:
        rows = await pg.fetch("SELECT * FROM boards WHERE deleted_at IS NULL ORDER BY id")
        boards = [DEFAULT if r["id"] == DEFAULT.id else Board.from_row(r) for r in rows
                  if only is None or r["id"] == only]
        if not boards:
            print(f"no board {only!r}")
            return 2
        now = int(time.time() * 1_000_000)
        for board in boards:
            season = board.schedule.season_at(now)
            if season is None:
                print(f"board {board.id}: its first season has not started")
                continue
            report = await reconcile_all(Topology.of(store), pg, keys, dry_run=dry_run,
                                         board=board, season=season)
            print(f"board {board.id} (namespace {keys.board_name}), season {season}:")
            for line in report.lines(fixed=not dry_run):
                print("  " + line)
            drift += report.drift
    finally:
        await pg.close()
    return 1 if drift else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    parser.add_argument("--board", help="one board (default: every board)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.dry_run, args.board)))
