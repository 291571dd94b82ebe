"""Postgres table bloat under the writers' upsert: size after many updates of the same rows.

Usage: ``.venv/bin/python scripts/bench_bloat.py [--users 10000] [--updates 1000000]
[--reloptions 'autovacuum_vacuum_scale_factor=0'] [--vacuum-every N] [--private]``.
Creates a scratch database (``--database``, dropped and made anew) with the schema of
``leaderboard/pipeline/schema.sql``, inserts the users, then applies the updates with the
project's own UPSERT (``leaderboard/pipeline/db.py``) in batches like the writers', each user
once per batch with a newer version and a new score. Prints the table and index sizes, dead
tuples and autovacuum runs every ``--report-every`` updates. ``--private`` runs against a
throwaway Postgres of its own (initdb in a temporary folder, ``autovacuum_naptime=1s``), so
autovacuum can be measured where the shared server has it off. Figures: docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from leaderboard.pipeline.db import UPSERT, migrate

MIB = 2**20
STATS = """
SELECT pg_table_size('leaderboard') AS t, pg_indexes_size('leaderboard') AS i,
       n_live_tup AS live, n_dead_tup AS dead, autovacuum_count AS av,
       n_tup_upd AS upd, n_tup_hot_upd AS hot
FROM pg_stat_user_tables WHERE relname = 'leaderboard'
"""


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--updates", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000, help="rows per upsert (the writers' batch)")
    p.add_argument("--reloptions", default="", help="ALTER TABLE leaderboard SET (...) first")
    p.add_argument("--vacuum-every", type=int, default=0, help="a plain VACUUM every N updates")
    p.add_argument("--report-every", type=int, default=100_000)
    p.add_argument("--database", default=os.environ.get("BLOAT_PGDATABASE", "leaderboard_bloat"))
    p.add_argument("--private", action="store_true", help="a throwaway Postgres, autovacuum on")
    p.add_argument("--private-port", type=int, default=18256)
    return p.parse_args()


@contextmanager
def private_postgres(port: int) -> Iterator[str]:
    """A throwaway server (autovacuum on, naptime 1 s); its admin DSN."""
    d = Path(tempfile.mkdtemp(prefix="lb-bloat-")) / "pg"
    d.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(d.parent, "postgres", "postgres")
        shutil.chown(d, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    pg_bin = Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip()) \
        if shutil.which("pg_config") else next(Path("/usr/lib/postgresql").glob("*/bin"))
    subprocess.run([*run_as, str(pg_bin / "initdb"), "-D", str(d), "-U", "postgres", "--auth=trust"],
                   check=True, stdout=subprocess.DEVNULL)
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {d} -c autovacuum=on -c autovacuum_naptime=1s"
    subprocess.run([*run_as, str(pg_bin / "pg_ctl"), "-D", str(d), "-o", opts, "-l",
                    str(d / "log"), "-w", "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(pg_bin / "pg_ctl"), "-D", str(d), "-m", "immediate", "stop"],
                       check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(d.parent, ignore_errors=True)


async def fresh_database(admin_dsn: str, name: str, reloptions: str) -> str:
    """Drop and create ``name`` with the schema (and the given storage parameters); its DSN."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        if reloptions:
            await conn.execute(f"ALTER TABLE leaderboard SET ({reloptions})")
    finally:
        await conn.close()
    return dsn


async def report(conn: asyncpg.Connection, done: int, t0: float) -> None:
    await asyncio.sleep(0.6)  # the statistics collector reports every 500 ms
    r = await conn.fetchrow(STATS)
    assert r is not None
    hot = 100 * r["hot"] / r["upd"] if r["upd"] else 0.0
    print(f"{done:>9,} updates  table {r['t'] / MIB:7.1f} MiB  indexes {r['i'] / MIB:7.1f} MiB  "
          f"dead {r['dead']:>8,}  autovacuums {r['av']}  HOT {hot:4.1f}%  {time.monotonic() - t0:5.0f}s",
          flush=True)


async def bloat(dsn: str, args: argparse.Namespace) -> None:
    """Insert the users, then the updates; a line every ``report_every``."""
    rand = random.Random(7)
    users = [f"user-{i:06d}" for i in range(args.users)]
    regions = [("ASIA", "EU", "NA", "GLOBAL")[i % 4] for i in range(args.users)]
    conn = await asyncpg.connect(dsn)
    version, done, t0 = 0, -args.users, time.monotonic()
    try:
        while done < args.updates:
            for start in range(0, args.users, args.batch):
                ids, regs = users[start:start + args.batch], regions[start:start + args.batch]
                n = len(ids)
                vs = list(range(version + 1, version + n + 1))
                version += n
                await conn.execute(UPSERT, ids, ids, regs, [rand.randrange(10**9) for _ in ids],
                                   vs, vs, [int(time.time() * 1000)] * n, ["default"] * n,
                                   [1] * n)
                done += n
                if args.vacuum_every and done > 0 and done % args.vacuum_every < n:
                    await conn.execute("VACUUM leaderboard")
                if done >= 0 and done % args.report_every < n:
                    await report(conn, done, t0)
                if done >= args.updates:
                    break
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace, admin_dsn: str) -> None:
    dsn = await fresh_database(admin_dsn, args.database, args.reloptions)
    admin = await asyncpg.connect(admin_dsn)
    print(f"autovacuum {await admin.fetchval('SHOW autovacuum')}, reloptions "
          f"{args.reloptions or 'none'}, VACUUM every {args.vacuum_every or '-'} updates")
    await admin.close()
    await bloat(dsn, args)


def main() -> None:
    args = options()
    if args.private:
        with private_postgres(args.private_port) as admin_dsn:
            asyncio.run(main_async(args, admin_dsn))
    else:
        from leaderboard.settings import StoreSettings

        asyncio.run(main_async(args, StoreSettings().dsn("postgres")))  # type: ignore[call-arg]


if __name__ == "__main__":
    main()
