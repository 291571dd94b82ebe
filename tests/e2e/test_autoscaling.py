"""The ranking deployment scales on load, with serve_config.yaml's autoscaling settings.

An app of its own (board "as" at /as) whose Ranker takes min/max replicas and the target from the
checked-in Serve config, with only the delays shortened (as in Ray's own tests). Replica counts
are read from ``serve.status()`` and waited for, never timed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from leaderboard.serve.config import load
from tests.e2e.conftest import Service, app_client, delete_app, deploy, s_db

APP = "autoscale"
FAST = {"metrics_interval_s": 0.1, "look_back_period_s": 0.2, "upscale_delay_s": 0,
        "downscale_delay_s": 0.5}


@pytest.fixture(scope="module")
def autoscaled(service: Service) -> Iterator[Service]:
    from leaderboard.pipeline.db import ensure_database

    s = service.settings.model_copy(update={
        "board": "as", "regions": "GLOBAL,EU", "writer_pool_size": 1,
        "pgdatabase": s_db(service, "as"),
        # the gateway's read cache would answer these identical reads itself: the Ranker's
        # autoscaling is measured on reads that reach it
        "read_cache_size": 0,
    })
    asyncio.run(ensure_database(s))
    yield deploy(s, APP, "/as", Ranker={"autoscaling_config": FAST})
    delete_app(APP)


def running_rankers() -> int:
    from ray import serve

    states = serve.status().applications[APP].deployments["Ranker"].replica_states
    return int(states.get("RUNNING", 0))


async def wait_for(condition_name: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{condition_name} not reached within {timeout}s "
                         f"(running rankers: {await asyncio.to_thread(running_rankers)})")


async def test_ranker_grows_under_a_read_burst_and_shrinks_after(autoscaled: Service) -> None:
    auto = load().deployments["Ranker"]["autoscaling_config"]
    low, high = auto["min_replicas"], auto["max_replicas"]
    assert high > low
    await wait_for("the minimum", lambda: running_rankers() == low, 20)

    stop = asyncio.Event()
    answered = 0

    async def reader(client: httpx.AsyncClient) -> None:
        nonlocal answered
        while not stop.is_set():
            r = await client.get("/top", params={"region": "GLOBAL", "limit": 100})
            assert r.status_code == 200, r.text
            answered += 1

    async with app_client(autoscaled) as c:
        readers = [asyncio.create_task(reader(c)) for _ in range(48)]
        try:
            seen: list[int] = []

            def grew() -> bool:
                seen.append(running_rankers())
                return seen[-1] > low

            # the count seen past the minimum, not a second look: with the test's short
            # delays the Ranker may already shrink again between two looks
            await wait_for("growth past the minimum", grew, 30)
            grown = max(seen)
        finally:
            stop.set()
            await asyncio.gather(*readers)
    assert low < grown <= high
    assert answered > 0
    await wait_for("shrinking back to the minimum", lambda: running_rankers() == low, 30)
