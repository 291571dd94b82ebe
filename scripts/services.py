"""Make sure Redis and Postgres answer at the configured addresses; start local ones if not.

Usage: services.py [--started-file F]   ensure both, create the database, apply the schema
       services.py --stop F            stop what an earlier run recorded in F
Local servers keep their data under STATE_DIR (default .data/, git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import asyncpg
import redis

from leaderboard.pipeline.db import ensure_database
from leaderboard.settings import StoreSettings
from leaderboard.shards import redacted

LOCAL = {"127.0.0.1", "localhost", "::1", ""}


def fail(msg: str) -> None:
    print(f"services: {msg}", file=sys.stderr)
    raise SystemExit(1)


def redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def quoted(value: object) -> str:
    """A value for a redis.conf line, whatever characters it holds."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_config(url: str, d: Path) -> str:
    """redis-server's configuration, password included: given on stdin, never in ``ps``."""
    u = urlparse(url)
    lines = [f"port {u.port or 6379}", "bind 127.0.0.1", "daemonize yes", f"dir {quoted(d)}",
             "appendonly yes", "appendfsync everysec", 'save ""', f"pidfile {quoted(d / 'redis.pid')}",
             f"logfile {quoted(d / 'redis.log')}"]
    if u.password:
        password = unquote(u.password)
        if u.username and unquote(u.username) != "default":
            lines.append(f"user {quoted(unquote(u.username))} on {quoted('>' + password)} ~* &* +@all")
        else:
            lines.append(f"requirepass {quoted(password)}")
    return "\n".join(lines) + "\n"


def start_redis(url: str, state: Path) -> str:
    u = urlparse(url)
    if (u.hostname or "") not in LOCAL:
        fail(f"Redis at {u.hostname}:{u.port} does not answer and is not local; check REDIS_URL")
    binary = shutil.which("redis-server")
    if binary is None:
        fail("Redis does not answer and redis-server is not installed "
             "(Debian: apt-get install redis-server), or set REDIS_URL")
    d = state / "redis"
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run([binary, "-"], input=redis_config(url, d), text=True, check=True)
    for _ in range(50):
        if redis_up(url):
            print(f"services: started redis-server on 127.0.0.1:{u.port or 6379} (AOF everysec, {d})")
            return f"redis {d / 'redis.pid'}"
        time.sleep(0.1)
    fail(f"redis-server did not answer; see {d / 'redis.log'}")
    raise AssertionError


async def pg_up(store: StoreSettings) -> bool:
    """True when Postgres answers; False when nothing listens; exits when it refuses us."""
    try:
        conn = await asyncpg.connect(store.dsn("postgres"), timeout=2)
    except (TimeoutError, OSError):
        return False
    except asyncpg.PostgresError as exc:
        fail(f"Postgres at {store.pghost}:{store.pgport} refused user {store.pguser!r}: {exc}")
    await conn.close()
    return True


def pg_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        fail(f"Postgres does not answer and {name} is not installed "
             "(Debian: apt-get install postgresql), or set PGHOST/PGPORT/DATABASE_URL")
    return str(found)


def as_postgres(cmd: list[str]) -> list[str]:
    """Postgres refuses to run as root: run its tools as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser") is None:
        fail("running as root needs runuser to start Postgres as the postgres user")
    return ["runuser", "-u", "postgres", "--", *cmd]


def start_postgres(store: StoreSettings, state: Path) -> str:
    if store.pghost not in LOCAL:
        fail(f"Postgres at {store.pghost}:{store.pgport} does not answer and is not local")
    d = state / "pg"
    if not (d / "PG_VERSION").exists():
        d.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(d, "postgres", "postgres")
        subprocess.run(as_postgres([pg_binary("initdb"), "-D", str(d), "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8"]), check=True,
                       stdout=subprocess.DEVNULL)
    opts = f"-p {store.pgport} -c listen_addresses=127.0.0.1 -k {d}"
    subprocess.run(as_postgres([pg_binary("pg_ctl"), "-D", str(d), "-o", opts, "-l",
                                str(d / "postgres.log"), "-w", "start"]), check=True)
    print(f"services: started postgres on 127.0.0.1:{store.pgport} ({d})")
    return f"postgres {d}"


async def ensure_role(store: StoreSettings) -> None:
    """A freshly initialised cluster only knows ``postgres``: create PGUSER as a superuser."""
    if store.pguser == "postgres" or store.database_url:
        return
    conn = await asyncpg.connect(f"postgresql://postgres@{store.pghost}:{store.pgport}/postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", store.pguser)
        if not exists:
            await conn.execute(f'CREATE ROLE "{store.pguser}" SUPERUSER LOGIN')
    finally:
        await conn.close()


def stop(started_file: Path) -> None:
    if not started_file.exists():
        return
    for line in started_file.read_text().splitlines():
        kind, path = line.split(" ", 1)
        if kind == "redis" and Path(path).exists():
            subprocess.run(["kill", Path(path).read_text().strip()], check=False)
            print("services: stopped the redis-server we started")
        elif kind == "postgres":
            subprocess.run(as_postgres([pg_binary("pg_ctl"), "-D", path, "-m", "fast", "stop"]),
                           check=False, stdout=subprocess.DEVNULL)
            print("services: stopped the postgres we started")
    started_file.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--started-file", type=Path)
    parser.add_argument("--stop", type=Path)
    args = parser.parse_args()
    if args.stop:
        stop(args.stop)
        return
    store = StoreSettings()
    state = Path(store.state_dir).resolve()
    started = []
    if not redis_up(store.redis_url):
        started.append(start_redis(store.redis_url, state))
    if not asyncio.run(pg_up(store)):
        started.append(start_postgres(store, state))
        asyncio.run(ensure_role(store))
    if args.started_file and started:
        args.started_file.parent.mkdir(parents=True, exist_ok=True)
        with args.started_file.open("a") as f:
            f.writelines(s + "\n" for s in started)
    asyncio.run(ensure_database(store))
    print(f"services: Redis {redacted(store.redis_url)} and Postgres database {store.database_name()!r} ready")


if __name__ == "__main__":
    main()
