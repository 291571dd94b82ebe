"""Read scripts against the real Redis: top-N, rank and around-me are exact."""

from __future__ import annotations

import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import Settings


async def fill(settings: Settings, n: int) -> None:
    """Users u00..u(n-1) in EU with score = index (so u(n-1) ranks first)."""
    shard = RegionShard(settings, "EU")
    for i in range(n):
        await shard.write(WriteCommand(f"u{i:02d}", f"N{i}", "EU", "set", i))


async def test_top_limit_and_total(settings: Settings, redis: aioredis.Redis) -> None:
    await fill(settings, 12)
    top = await Ranker(settings).top("EU", 5)
    assert top["total"] == 12
    assert [(e["rank"], e["user_id"], e["score"]) for e in top["entries"]] == [
        (1, "u11", 11), (2, "u10", 10), (3, "u09", 9), (4, "u08", 8), (5, "u07", 7)
    ]
    assert (await Ranker(settings).top("NA", 5)) == {"region": "NA", "entries": [], "total": 0,
                                                     "next": None}


async def test_rank_missing_user_or_other_board_is_none(
    settings: Settings, redis: aioredis.Redis
) -> None:
    await fill(settings, 3)
    ranker = Ranker(settings)
    assert await ranker.rank("EU", "ghost") is None
    assert await ranker.rank("NA", "u01") is None
    assert await ranker.rank("EU", "u01") == {
        "rank": 2, "user_id": "u01", "name": "N1", "region": "EU", "score": 1, "metadata": {},
        "total": 3, "percentile": 33.33, "gap_to_next": 2,  # u02 holds 2: 3 passes it
    }


async def test_around_middle_and_edges(settings: Settings, redis: aioredis.Redis) -> None:
    await fill(settings, 10)  # ranks: u09=1 ... u00=10
    ranker = Ranker(settings)
    mid = await ranker.around("EU", "u05", 2)  # rank 5
    assert mid is not None
    assert mid["self"]["rank"] == 5 and mid["self"]["user_id"] == "u05"
    assert [e["rank"] for e in mid["around"]] == [3, 4, 6, 7]
    first = await ranker.around("EU", "u09", 3)
    assert first is not None and [e["rank"] for e in first["around"]] == [2, 3, 4]
    last = await ranker.around("EU", "u00", 3)
    assert last is not None and [e["rank"] for e in last["around"]] == [7, 8, 9]
    assert await ranker.around("EU", "ghost", 3) is None
