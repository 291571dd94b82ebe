"""Reads through the gateway's cache: answered here when the barrier vouches for the cache,
else by the ranking replicas (and then kept). Also the subscriptions' one entry point: every
change they announce goes to the cache and to whoever else watches (the live views).

Exactness: a write's announcement is published by its own script, so by the time a client has
the write's answer the message is on its way on the instance's pub/sub connection. A read sends
PING on that connection after it arrived (``Subscriber.barrier``) and looks at the cache only
once the pong is back, i.e. once every message published before the read started has dropped
what it changed. A view lives on its region's instance; a read of a board other than default
also waits for REDIS_URL's instance, where creations and deletions of boards are announced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from leaderboard import changes
from leaderboard.boards import DEFAULT, Board
from leaderboard.changes import Change
from leaderboard.keys import DEFAULT_BOARD, Keys
from leaderboard.serve.ranking import Answer, ReadRequest
from leaderboard.serve.subscriber import NotSubscribed, Subscriber
from leaderboard.serve.view_cache import ViewCache
from leaderboard.shards import Topology

log = logging.getLogger(__name__)

Send = Callable[[ReadRequest], Awaitable[Answer]]
Lookup = Callable[[str], Board | None]
Watcher = Callable[[Change | None], None]  # None: anything may have changed
NOT_SENT = object()


class ReadThrough:
    """One gateway process's cache of read answers and the subscriptions that keep it exact."""

    def __init__(self, topology: Topology, keys: Keys, size: int, send: Send,
                 boards: Lookup) -> None:
        self.cache = ViewCache(size)
        self._topology = topology
        self._send = send
        self._boards = boards
        self._watchers: list[Watcher] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.barriers = 0  # reads that waited for one (they found an answer held)
        self._main = topology.global_url
        self._live, self._boards_rev = keys.live, keys.boards_rev
        self.subscribers = {
            url: Subscriber(url, [keys.live, keys.boards_rev] if url == self._main
                            else [keys.live], partial(self._message, url), self._reset)
            for url in topology.urls()}

    def stats(self) -> dict[str, int | bool]:
        """The cache's counters, and whether every subscription is up."""
        return {**self.cache.stats(), "barriers": self.barriers,
                "subscribed": all(s.ready for s in self.subscribers.values())}

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def start(self) -> None:
        """Subscribe to every instance (at start-up; else the first read does it)."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(s.run()) for s in self.subscribers.values()]

    async def read(self, request: ReadRequest) -> Answer:
        """The answer to ``request``: from the cache when it may, else from a ranking replica.

        Only a held answer needs the barrier: a read that finds none goes to the ranking
        replicas at once, as it would without a cache (a Redis that hangs holds it there, not
        here), and its answer is kept if nothing heard meanwhile could have changed it."""
        if not self._tasks:
            self.start()
        board = self._board(request)
        if board is None or not self.cache.cacheable(request):
            return await self._send(request)
        key, urls = (request, board.generation), self._instances(request)
        if self.cache.peek(key) is not None:
            self.barriers += 1
            try:
                await self.barrier(urls)
            except NotSubscribed:
                return await self._send(request)
        view = self.cache.get(key)
        if view is not None:
            return view.body
        if not all(self.subscribers[url].ready for url in urls):
            return await self._send(request)  # unheard changes: nothing may be kept
        ticket = self.cache.ticket(key)
        answer: object = NOT_SENT
        try:
            answer = await self._send(request)
        finally:
            self.cache.fill(ticket, key, answer, board)
        return answer

    async def barrier(self, urls: list[str]) -> None:
        """Every message these instances published before now has been handled."""
        for future in [self.subscribers[url].barrier() for url in urls]:
            await future

    def _board(self, request: ReadRequest) -> Board | None:
        return DEFAULT if request.board in ("", DEFAULT_BOARD) else self._boards(request.board)

    def _instances(self, request: ReadRequest) -> list[str]:
        home = self._topology.instance[request.region]
        if request.board in ("", DEFAULT_BOARD) or home == self._main:
            return [home]
        return [home, self._main]

    # -- what the subscriptions hear -----------------------------------------------------------

    def _message(self, url: str, channel: str, data: bytes) -> None:
        if channel == self._boards_rev:
            self.cache.drop_boards()
            return
        try:
            change = changes.parse(data)
        except ValueError:
            log.warning("unknown change message on %s: %r", channel, data[:200])
            change = None
        if change is None:
            self.cache.flush()
        else:
            self.cache.apply(change)
        for watcher in self._watchers:
            watcher(change)

    def _reset(self) -> None:
        """A subscription was lost or is back: nothing heard so far vouches for anything."""
        self.cache.flush()
        for watcher in self._watchers:
            watcher(None)
