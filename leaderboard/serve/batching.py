"""Micro-batching: concurrent calls to the same target travel together, one Ray call per group.

A hop between Ray processes costs about as much as the HTTP ingress itself, so paying it once
per request caps throughput. A ``MicroBatcher`` sends at once while fewer than ``max_inflight``
groups are on their way, and otherwise queues; each finished group sends what queued meanwhile
(up to ``max_size``). A group is taken when its send starts, one turn of the event loop after
the call that started it, so the calls of requests that arrived together travel together. At
low load nothing waits longer than that turn; under load groups grow by themselves.
``max_wait_s`` > 0 additionally holds a group open that long to let it fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Groups items for ``send``, which must answer one result per item, in order."""

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_size: int = 256,
        max_inflight: int = 2,
        max_wait_s: float = 0.0,
    ) -> None:
        self._send = send
        self._max_size = max_size
        self._max_inflight = max_inflight
        self._max_wait_s = max_wait_s
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._inflight = 0
        self._starting = 0  # sends started but not yet run: each will take up to max_size
        self._timer: asyncio.TimerHandle | None = None
        self.groups_sent = 0
        self.items_sent = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._maybe_send()
        return await future

    def _maybe_send(self) -> None:
        while (len(self._queue) > self._starting * self._max_size
               and self._inflight < self._max_inflight):
            if self._max_wait_s > 0 and len(self._queue) < self._max_size:
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(
                        self._max_wait_s, self._timer_fired)
                return
            self._inflight += 1
            self._starting += 1
            asyncio.get_running_loop().create_task(self._run())

    def _timer_fired(self) -> None:
        self._timer = None
        wait, self._max_wait_s = self._max_wait_s, 0.0
        try:
            self._maybe_send()
        finally:
            self._max_wait_s = wait

    async def _run(self) -> None:
        self._starting -= 1
        group, self._queue = self._queue[: self._max_size], self._queue[self._max_size :]
        if not group:  # taken by a send that started first
            self._inflight -= 1
            return
        self.groups_sent += 1
        self.items_sent += len(group)
        try:
            results = await self._send([item for item, _ in group])
            if len(results) != len(group):
                raise RuntimeError(f"sent {len(group)} items, got {len(results)} results")
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
        except Exception as exc:  # every caller of the group sees the failure
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._inflight -= 1
            self._maybe_send()
