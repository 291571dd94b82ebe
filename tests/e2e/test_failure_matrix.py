"""Failure answers that tell the truth: every endpoint while Postgres is stopped, Redis is
stopped, a shard actor is killed or the ranking replica is killed. Each answer is the documented
one (503 ``unavailable`` with ``Retry-After`` where retrying helps, never a 500), and once the
dependency is back the same request succeeds. And a bug inside a shard actor is a logged 500
that nobody retries.

The "matrix" app runs on the shared Serve against a Redis and a Postgres of its own, with rate
limits on (generous ones): sign-ups and logins then need Redis, as in production.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import ray
import redis.asyncio as aioredis
from ray import serve

from leaderboard.actors.router import shard_actor_name
from leaderboard.keys import Keys
from leaderboard.pipeline.db import ensure_database
from leaderboard.serve.auth import issue_token
from tests.e2e.conftest import Service, app_client, bearer, deploy, uid
from tests.e2e.servers import OwnPostgres, OwnRedis

APP, REGION, PASSWORD = "matrix", "EU", "correct horse battery"


@dataclass
class World:
    """The matrix app, the servers behind it, and tokens for its operators."""

    app: Service
    redis: OwnRedis
    pg: OwnPostgres

    def token(self, user: str, role: str = "player") -> dict[str, str]:
        return bearer(issue_token(self.app.settings, user, f"Name {user}", REGION, role=role))


@pytest.fixture(scope="module")
def world(service: Service) -> Iterator[World]:
    own_redis, own_pg = OwnRedis(), OwnPostgres()
    own_redis.start()
    own_pg.start()
    s = service.settings.model_copy(update={
        "board": APP, "regions": "GLOBAL,EU,NA", "redis_url": own_redis.url,
        "database_url": None, "pghost": "127.0.0.1", "pgport": own_pg.port, "pguser": "postgres",
        "pgdatabase": "leaderboard", "writer_pool_size": 1, "rate_limits_enabled": True,
        "user_rate_limit_count": 10_000, "user_rate_limit_window": 1.0,
        "auth_rate_limit_count": 10_000, "auth_rate_limit_global_per_sec": 10_000,
    })
    asyncio.run(ensure_database(s))
    try:
        yield World(deploy(s, APP, f"/{APP}"), own_redis, own_pg)
    finally:
        own_redis.stop()
        own_pg.destroy()


@pytest.fixture
async def mc(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(world.app) as c:
        yield c


# -- the endpoints, each as one request ---------------------------------------------------------


@dataclass
class Users:
    """Fresh users for one scenario: each request of the matrix is one no earlier one made."""

    player: str  # registered, with an entry
    batched: str  # registered, never written by a batch (its profile is not cached yet)
    newcomer: str  # not registered: the sign-up
    creator: str  # a token holder without an entry: the create


async def users(mc: httpx.AsyncClient) -> Users:
    u = Users(uid("pl"), uid("ba"), uid("nc"), uid("cr"))
    for user in (u.player, u.batched):
        r = await mc.post("/auth/register", json=signup(user) | {"initialScore": 10})
        assert r.status_code == 201, r.text
    return u


def signup(user: str) -> dict[str, Any]:
    return {"user_id": user, "name": f"Name {user}", "region": REGION, "password": PASSWORD}


Request = Callable[[httpx.AsyncClient, World, Users], Awaitable[httpx.Response]]
ENDPOINTS: dict[str, tuple[int, Request]] = {  # name: (status when all is well, the request)
    "register": (201, lambda c, w, u: c.post("/auth/register", json=signup(u.newcomer))),
    "login existing": (200, lambda c, w, u: c.post(
        "/auth/login", json={"user_id": u.player, "password": PASSWORD})),
    "login unknown": (401, lambda c, w, u: c.post(
        "/auth/login", json={"user_id": uid("nobody"), "password": PASSWORD})),
    "score create": (201, lambda c, w, u: c.post(
        "/score/create", json={}, headers=w.token(u.creator))),
    "score update": (200, lambda c, w, u: c.post(
        "/score/update", json={"score": 20}, headers=w.token(u.player))),
    "score add": (200, lambda c, w, u: c.post(
        "/score/add", json={"delta": 1}, headers=w.token(u.player))),
    "batch": (200, lambda c, w, u: c.post(
        "/scores/batch", json={"items": [{"user_id": u.batched, "delta": 1}]},
        headers=w.token("game", "server"))),
    "top": (200, lambda c, w, u: c.get("/top", params={"region": REGION})),
    "rank": (200, lambda c, w, u: c.get(f"/rank/{u.player}", params={"region": REGION})),
    "around": (200, lambda c, w, u: c.get(f"/around/{u.player}", params={"region": REGION})),
    "admin writers": (200, lambda c, w, u: c.get(
        "/admin/writers", headers=w.token("ops", "admin"))),
    "health": (200, lambda c, w, u: c.get("/health")),
}


# -- what each answer must be -------------------------------------------------------------------


def unavailable(r: httpx.Response) -> None:
    """503 ``unavailable`` with Retry-After: retrying helps."""
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "unavailable", r.text
    assert r.headers.get("retry-after") == "1", r.headers


def batch_refused(r: httpx.Response) -> None:
    """The batch answers 200; its item is refused as ``unavailable`` with retry_after."""
    assert r.status_code == 200, r.text
    [item] = r.json()["results"]
    assert (item["status"], item["error"], item["retry_after"]) == (
        "refused", "unavailable", 1), item


def degraded(component: str) -> Callable[[httpx.Response], None]:
    def check(r: httpx.Response) -> None:
        """Health answers 503 with its own body, naming what is unreachable."""
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["status"] == "degraded" and body[component] == "unreachable", body
    return check


def fine(r: httpx.Response, status: int) -> bool:
    """The answer when all is well (the status, and a batch item applied)."""
    if r.status_code != status:
        return False
    return "results" not in r.json() or r.json()["results"][0]["status"] == "applied"


Check = Callable[[httpx.Response], None]
OK = None  # the answer when all is well: the fault does not concern this endpoint
WRITE_BEHIND = None  # writes go to Redis first: accepted while Postgres is down (documented)
# an actor restarting: 503 unavailable, or the request waited for the new actor (Serve queues a
# read while no ranking replica is up); test_request_in_flight_when_its_actor_dies pins the 503
RACE = "race"

EXPECTED: dict[str, dict[str, Check | str | None]] = {
    "postgres": {
        "register": unavailable, "login existing": unavailable, "login unknown": unavailable,
        "score create": WRITE_BEHIND, "score update": WRITE_BEHIND, "score add": WRITE_BEHIND,
        "batch": unavailable,  # the items' owners are looked up in Postgres
        "top": OK, "rank": OK, "around": OK, "admin writers": OK,
        "health": degraded("postgres"),
    },
    "redis": {
        "register": unavailable, "login existing": unavailable, "login unknown": unavailable,
        "score create": unavailable, "score update": unavailable, "score add": unavailable,
        "batch": batch_refused, "top": unavailable, "rank": unavailable, "around": unavailable,
        "admin writers": OK, "health": degraded("redis"),
    },
    "shard": {
        "register": OK, "login existing": OK, "login unknown": OK,
        "score create": RACE, "score update": RACE, "score add": RACE, "batch": RACE,
        "top": OK, "rank": OK, "around": OK, "admin writers": OK, "health": OK,
    },
    "ranker": {
        "register": OK, "login existing": OK, "login unknown": OK,
        "score create": OK, "score update": OK, "score add": OK, "batch": OK,
        "top": RACE, "rank": RACE, "around": RACE, "admin writers": OK, "health": OK,
    },
}


def assert_answer(name: str, expected: Check | str | None, r: httpx.Response) -> bool:
    """The answer is the documented one; True when the request succeeded."""
    status = ENDPOINTS[name][0]
    assert r.status_code != 500, f"{name}: {r.text}"
    if expected is None:
        assert fine(r, status), f"{name}: {r.status_code} {r.text}"
        return True
    if expected == RACE:
        if fine(r, status):
            return True
        (batch_refused if name == "batch" else unavailable)(r)
        return False
    assert callable(expected)
    expected(r)
    return False


# -- the faults -----------------------------------------------------------------------------


async def until(ready: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    """Wait for a dependency to be back (the wait is not what the test measures)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await ready():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not back after {timeout}s")


async def healthy(mc: httpx.AsyncClient) -> bool:
    return (await mc.get("/health")).status_code == 200


def shard(world: World) -> Any:
    s = world.app.settings
    return ray.get_actor(shard_actor_name(s, REGION), namespace=s.ray_namespace)


def ranker_replicas() -> list[Any]:
    """The ranking replicas of the matrix app (Serve names its replica actors by app and
    deployment)."""
    return [ray.get_actor(a["name"], namespace=a["namespace"])
            for a in ray.util.list_named_actors(all_namespaces=True)
            if f"{APP}#Ranker#" in a["name"]]


async def ranker_running() -> bool:
    status = serve.status().applications[APP].deployments["Ranker"]
    running = status.replica_states.get("RUNNING", 0)  # type: ignore[call-overload]
    return bool(status.status == "HEALTHY" and running >= 1)


class Fault:
    """Break a dependency, and mend it (returning once it is back)."""

    def __init__(self, world: World, mc: httpx.AsyncClient) -> None:
        self.world, self.mc = world, mc

    async def postgres(self, down: bool) -> None:
        if down:
            await asyncio.to_thread(self.world.pg.stop)
        else:
            await asyncio.to_thread(self.world.pg.start)
            await until(lambda: healthy(self.mc), "Postgres")

    async def redis(self, down: bool) -> None:
        own = self.world.redis
        if down:  # a clean stop: Redis writes its AOF out and exits
            direct = aioredis.Redis(port=own.port)
            await direct.shutdown()
            await direct.aclose()
            assert own.proc is not None
            await asyncio.to_thread(own.proc.wait, 10)
        else:
            await asyncio.to_thread(own.start)
            await until(lambda: healthy(self.mc), "Redis")

    async def shard(self, down: bool) -> None:
        handle = shard(self.world)
        if down:
            ray.kill(handle, no_restart=False)  # restartable (max_restarts=-1): it comes back
        else:
            async def pings() -> bool:
                try:
                    return bool(await asyncio.wait_for(handle.ping.remote(), 5))
                except (ray.exceptions.RayActorError, TimeoutError):
                    return False
            await until(pings, "the shard actor")

    async def ranker(self, down: bool) -> None:
        if down:
            replicas = ranker_replicas()  # one, or two once autoscaling added one
            assert replicas
            for replica in replicas:
                ray.kill(replica)  # Serve starts new replicas in their place
        else:
            await until(ranker_running, "the ranking replica")


@pytest.mark.parametrize("fault", list(EXPECTED))
async def test_every_endpoint_answers_the_truth(
    fault: str, world: World, mc: httpx.AsyncClient
) -> None:
    u = await users(mc)
    switch = getattr(Fault(world, mc), fault)
    start = time.monotonic()
    await switch(True)
    try:
        # all at once, right away: the writes meet the killed shard before it is back
        sent = await asyncio.gather(*(request(mc, world, u) for _, request in ENDPOINTS.values()))
        answers = dict(zip(ENDPOINTS, sent, strict=True))
    finally:
        await switch(False)
    seen = {name: f"{r.status_code} {r.json().get('error', '')}".strip()
            for name, r in answers.items()}
    print(f"{fault} down: {seen}")
    refused = [name for name, r in answers.items()
               if not assert_answer(name, EXPECTED[fault][name], r)]
    for name in refused:  # the dependency is back: the same request succeeds
        status, request = ENDPOINTS[name]
        again = await request(mc, world, u)
        assert fine(again, status), f"{name} once {fault} is back: {again.status_code} {again.text}"
    print(f"{fault}: {len(refused)} refused then served, {time.monotonic() - start:.1f}s")


# -- a bug inside a shard actor -------------------------------------------------------------------


async def failed_script_calls(direct: aioredis.Redis) -> int:
    """Script calls on the matrix app's own Redis that ended in an error."""
    stats = await direct.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{cmd}", {}).get("failed_calls", 0))
               for cmd in ("eval", "evalsha"))


def logged_bugs() -> list[str]:
    """Each "unhandled error" entry, with what follows it, in this Ray session's worker logs."""
    from pathlib import Path

    node = ray._private.worker.global_worker.node  # this session's (no public accessor)
    assert node is not None
    logs = Path(node.get_session_dir_path()) / "logs"
    marker = "unhandled error while answering"
    found: list[str] = []
    for path in logs.rglob("*"):
        if path.is_file() and path.suffix in (".err", ".out", ".log"):
            text = path.read_text(errors="replace")
            found += [marker + part[:4000] for part in text.split(marker)[1:]]
    return found


async def test_script_error_is_a_logged_500_and_not_retried(
    world: World, mc: httpx.AsyncClient
) -> None:
    """A corrupt user hash makes the write script raise (Lua arithmetic on a non-number):
    a bug, answered 500 internal_error without Retry-After, logged once with its traceback,
    and the script ran once (neither the gateway nor Ray re-ran it)."""
    user = uid("bug")
    headers = world.token(user)
    first = await mc.post("/score/add", json={"delta": 1}, headers=headers)
    assert first.status_code == 200, first.text  # the script is loaded; the user exists
    direct = aioredis.Redis(port=world.redis.port, decode_responses=True)
    try:
        await direct.hset(Keys(APP).user(user), "score", "not-a-number")
        calls_before, logs_before = await failed_script_calls(direct), len(logged_bugs())
        r = await mc.post("/score/add", json={"delta": 1}, headers=headers)
        assert r.status_code == 500, r.text
        assert r.json() == {"error": "internal_error", "detail": "unexpected server error"}
        assert "retry-after" not in r.headers
        assert await failed_script_calls(direct) - calls_before == 1  # not retried
    finally:
        await direct.aclose()

    async def logged() -> bool:
        return len(logged_bugs()) > logs_before

    await until(logged, "the log entry", timeout=10)
    new = logged_bugs()[logs_before:]
    assert len(new) == 1, new  # logged once
    assert "Traceback" in new[0] and "arithmetic" in new[0], new[0]


# -- a request in flight on an actor that dies --------------------------------------------------


@pytest.mark.parametrize("actor", ["shard", "ranker"])
async def test_request_in_flight_when_its_actor_dies(
    actor: str, world: World, mc: httpx.AsyncClient
) -> None:
    """Redis is paused, so the request waits inside the actor; the actor is killed: the answer
    is 503 unavailable (restarting), and the client's retry succeeds once the actor is back.
    A score write retried with its Idempotency-Key applies once."""
    user = uid("fl")
    headers = {**world.token(user), "Idempotency-Key": f"k-{user}"}
    assert (await mc.post("/score/update", json={"score": 5}, headers=world.token(user))
            ).status_code == 200

    async def request() -> httpx.Response:
        if actor == "shard":
            return await mc.post("/score/add", json={"delta": 2}, headers=headers)
        return await mc.get(f"/rank/{user}", params={"region": REGION})

    fault = Fault(world, mc)
    own = world.redis.proc
    assert own is not None
    own.send_signal(signal.SIGSTOP)
    try:
        in_flight = asyncio.create_task(request())
        await asyncio.sleep(1)  # well inside the 5 s socket timeout: the request waits on Redis
        await getattr(fault, actor)(True)
        r = await in_flight
    finally:
        own.send_signal(signal.SIGCONT)
    unavailable(r)
    assert "restarting" in r.json()["detail"], r.text  # the actor's death, not Redis's time-out
    await getattr(fault, actor)(False)
    again = await request()
    assert again.status_code == 200, again.text
    assert again.json()["score"] == (7 if actor == "shard" else 5)  # the add applied once
