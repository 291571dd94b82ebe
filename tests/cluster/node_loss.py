"""A head and two labelled nodes: shard placement, and losing a node during writes.

Runs in its own process (``test_cluster.py`` starts it) because a ``ray.cluster_utils.Cluster``
needs its own Ray, and the e2e suite keeps one local Ray for the whole session. Uses the test
Redis index and database, but its own board and Ray namespace, so it touches nothing of theirs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from leaderboard.actors.router import ensure_shards
from leaderboard.actors.shard import WriteCommand, WriteResult
from leaderboard.keys import Keys
from leaderboard.pipeline.pool import ensure_writers
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import GLOBAL, Settings
from leaderboard.shards import Topology

BOARD = "plcnode"
USER_PREFIX = "plcnode-"  # this scenario's users (earlier runs' rows are deleted at start)
USERS_PER_REGION = 4
CALL_TIMEOUT_S = 10.0
RETRY_PAUSE_S = 0.1
WAIT_S = 60.0  # generous: a loaded 2-core machine, three Ray nodes

pytestmark = pytest.mark.timeout(240)


@dataclass
class Client:
    """One user's writes, sent one at a time; the last acknowledged (value, version) counts."""

    user_id: str
    region: str
    sent: int = 0
    acked: tuple[int, int] | None = None
    refused: int = 0
    acked_at: list[float] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)


@pytest.fixture(scope="module")
def cluster_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "board": BOARD, "ray_namespace": f"leaderboard-cluster-{uuid.uuid4().hex[:6]}",
        "writer_pool_size": 2, "writer_claim_idle_ms": 2000,
    })


@dataclass
class Nodes:
    """The local cluster and its two labelled worker nodes."""

    cluster: Any
    eu: Any
    asia: Any

    def live(self) -> set[str]:
        return {n.node_id for n in self.cluster.list_all_nodes()}

    def actor(self, handle: Any) -> dict[str, Any]:
        """The GCS's record of an actor: State, NumRestarts, Address.NodeID."""
        info: dict[str, Any] = self.cluster.global_state.actor_table(handle._actor_id.hex())
        return info


@pytest.fixture(scope="module")
def nodes() -> Iterator[Nodes]:
    """Head (runs this driver) plus nodes labelled region=eu and region=asia."""
    import ray
    from ray.cluster_utils import Cluster

    assert os.environ.get("RAY_TMPDIR"), "run through test_cluster.py (own RAY_TMPDIR)"
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        eu = cluster.add_node(num_cpus=1, labels={"region": "eu"})
        asia = cluster.add_node(num_cpus=1, labels={"region": "asia"})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield Nodes(cluster, eu, asia)
    finally:
        ray.shutdown()
        cluster.shutdown()


async def wait_for(what: str, check: Any, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def write_once(shard: Any, client: Client, value: int) -> WriteResult | None:
    """One write; None when the shard could not be reached (the client retries it)."""
    from ray.exceptions import RayError

    cmd = WriteCommand(client.user_id, f"Name {client.user_id}", client.region, "set", value,
                       idempotency_key=f"k{value}")
    try:
        result: WriteResult = await asyncio.wait_for(shard.write.remote(cmd), CALL_TIMEOUT_S)
    except (RayError, TimeoutError):
        return None
    return None if result.status == "unavailable" else result


async def run_client(shard: Any, client: Client, stop: asyncio.Event) -> None:
    """Strictly increasing values; an unreachable shard is retried with the same key."""
    while not stop.is_set():
        value = client.sent + 1
        while (result := await write_once(shard, client, value)) is None:
            client.failed_at.append(time.monotonic())
            await asyncio.sleep(RETRY_PAUSE_S)
        client.sent = value
        if result.status in ("ok", "replay"):
            client.acked = (result.score, result.version)
            client.acked_at.append(time.monotonic())
        else:
            client.refused += 1


async def test_shards_follow_labels_and_survive_node_loss(
    nodes: Nodes, cluster_settings: Settings, pg_pool: asyncpg.Pool
) -> None:
    s = cluster_settings
    keys = Keys(s.board)
    redis = aioredis.Redis.from_url(s.redis_url, decode_responses=True)
    async for key in redis.scan_iter(match=f"{keys.prefix}*", count=1000):
        await redis.delete(key)
    await redis.set(keys.epoch, "cluster-test")  # the board is complete (empty), no rebuild
    await pg_pool.execute("DELETE FROM leaderboard WHERE user_id LIKE $1", f"{USER_PREFIX}%")

    shards = ensure_shards(s)
    writers = ensure_writers(s)
    assert all(await asyncio.gather(*(h.ping.remote() for h in shards.values())))
    eu_node, asia_node = nodes.eu.node_id, nodes.asia.node_id
    placed = {r: nodes.actor(h)["Address"]["NodeID"] for r, h in shards.items()}
    assert placed["EU"] == eu_node and placed["ASIA"] == asia_node, placed
    assert placed[GLOBAL] in nodes.live() and placed["NA"] in nodes.live()  # anywhere

    run = uuid.uuid4().hex[:8]
    clients = [Client(f"{USER_PREFIX}{run}-{r.lower()}-{i}", r)
               for r in s.region_list for i in range(USERS_PER_REGION)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_client(shards[c.region], c, stop)) for c in clients]
    eu = [c for c in clients if c.region == "EU"]
    await wait_for("writes on every shard",
                   async_true(lambda: all(len(c.acked_at) >= 5 for c in clients)))

    lost_at = time.monotonic()
    nodes.cluster.remove_node(nodes.eu, allow_graceful=False)  # a crash, not a drain
    # the actor's process may outlive its raylet for a moment: wait for the restart itself
    await wait_for("the EU shard restarted on another node", async_true(
        lambda: moved_off(nodes.actor(shards["EU"]), eu_node)))
    restarted_at = time.monotonic()
    await wait_for("EU writes after the restart", async_true(
        lambda: all(sum(t > restarted_at for t in c.acked_at) >= 10 for c in eu)))
    stop.set()
    await asyncio.gather(*tasks)

    moved = nodes.actor(shards["EU"])
    assert moved_off(moved, eu_node) and moved["NumRestarts"] >= 1, moved
    assert moved["Address"]["NodeID"] in nodes.live()
    stall_end = max(end_of_longest_gap(c.acked_at, lost_at) for c in eu)
    failed = sum(t > lost_at for c in eu for t in c.failed_at)

    # nothing acknowledged is lost: in Redis at once, in Postgres once drained
    acked = {c.user_id: c.acked for c in clients}
    assert all(v is not None for v in acked.values())
    assert all(c.refused == 0 for c in clients)  # limits are off: every write is admitted
    for c in clients:
        h = await redis.hgetall(keys.user(c.user_id))
        assert (int(h["score"]), int(h["version"])) == c.acked, c
    streams = [keys.stream(shard) for shard in Topology.of(s).all_shards()]

    async def drained() -> bool:
        return sum([await redis.xlen(st) for st in streams]) == 0

    async def stored() -> bool:
        rows = await pg_pool.fetch(
            "SELECT user_id, score, version FROM leaderboard WHERE user_id = ANY($1)", list(acked))
        return {r["user_id"]: (r["score"], r["version"]) for r in rows} == acked

    await wait_for("streams drained into Postgres", drained)
    await wait_for("every acknowledged write in Postgres", stored)

    # reads recover: ranks on every board match the acknowledged scores
    ranker = Ranker(s)
    for region in s.region_list:
        mine = [c for c in clients if region in (GLOBAL, c.region)]
        top = await ranker.top(region, 1000)
        board = {e["user_id"]: e["score"] for e in top["entries"]}
        wrong = {c.user_id: (board.get(c.user_id), c.sent, c.acked) for c in mine
                 if board.get(c.user_id) != c.sent}
        assert not wrong and len(board) == len(mine), (region, wrong, len(board), len(mine))
        scores = [e["score"] for e in top["entries"]]
        assert scores == sorted(scores, reverse=True) and top["total"] == len(mine)
        for c in mine:
            entry = await ranker.rank(region, c.user_id)
            assert entry is not None and entry["score"] == c.sent
    assert await shards["EU"].backlog.remote() == 0
    await asyncio.gather(*(w.stats.remote() for w in writers))
    await redis.aclose()

    report = {
        "node_loss_to_eu_writes_s": round(stall_end - lost_at, 2),
        "eu_failed_attempts": failed,
        "acknowledged_writes": sum(c.sent - c.refused for c in clients),
        "eu_moved_to": "head" if moved["Address"]["NodeID"] == nodes.cluster.head_node.node_id
        else "asia",
    }
    print("CLUSTER_REPORT " + json.dumps(report))


def moved_off(actor: dict[str, Any], node_id: str) -> bool:
    return bool(actor["State"] == "ALIVE" and actor["Address"]["NodeID"] != node_id)


def end_of_longest_gap(acks: list[float], since: float) -> float:
    """When acknowledgements resumed after the longest pause from ``since`` on."""
    times = [since, *(t for t in acks if t > since)]
    gaps = [(b - a, b) for a, b in itertools.pairwise(times)]
    return max(gaps)[1]


def async_true(pred: Any) -> Any:
    async def check() -> bool:
        return bool(pred())
    return check
