"""MicroBatcher: groups concurrent calls without delaying a lone one."""

from __future__ import annotations

import asyncio

import pytest

from leaderboard.serve.batching import MicroBatcher


class Recorder:
    """A send() that records its groups and can be held open."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False

    async def send(self, items: list[int]) -> list[int]:
        self.groups.append(list(items))
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("target down")
        return [i * 10 for i in items]


async def test_a_lone_call_is_sent_at_once() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.send)
    assert await asyncio.wait_for(batcher.submit(7), 0.5) == 70
    assert rec.groups == [[7]]


async def test_calls_queue_while_groups_are_in_flight_then_travel_together() -> None:
    rec = Recorder()
    rec.gate.clear()
    batcher = MicroBatcher(rec.send, max_inflight=1, max_size=100)
    tasks = [asyncio.create_task(batcher.submit(0))]
    await asyncio.sleep(0.01)
    tasks += [asyncio.create_task(batcher.submit(i)) for i in range(1, 10)]
    await asyncio.sleep(0.01)
    assert rec.groups == [[0]]  # the first went alone; the rest wait for it
    rec.gate.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(10)]
    assert rec.groups == [[0], list(range(1, 10))]
    assert (batcher.groups_sent, batcher.items_sent) == (2, 10)


async def test_calls_made_in_the_same_turn_of_the_loop_travel_together() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.send, max_inflight=2, max_size=100)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(5)]
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(5)]
    assert rec.groups == [list(range(5))]  # one group, though a second could have been sent
    assert (batcher.groups_sent, batcher.items_sent) == (1, 5)


async def test_group_size_is_bounded() -> None:
    rec = Recorder()
    rec.gate.clear()
    batcher = MicroBatcher(rec.send, max_inflight=1, max_size=4)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
    await asyncio.sleep(0.01)
    rec.gate.set()
    await asyncio.gather(*tasks)
    assert [len(g) for g in rec.groups] == [4, 4, 2]


async def test_a_failed_group_fails_its_callers_only() -> None:
    rec = Recorder()
    rec.gate.clear()
    rec.fail_next = True
    batcher = MicroBatcher(rec.send, max_inflight=1)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
    rec.gate.set()
    with pytest.raises(RuntimeError, match="target down"):
        await first
    assert await asyncio.gather(*later) == [20, 30]


async def test_wrong_number_of_results_is_an_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = MicroBatcher(short)
    with pytest.raises(RuntimeError, match="got 0 results"):
        await batcher.submit(1)


async def test_max_wait_holds_a_group_open_to_fill() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.send, max_wait_s=0.05, max_size=100)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.submit(2))
    assert await asyncio.gather(first, second) == [10, 20]
    assert rec.groups == [[1, 2]]
