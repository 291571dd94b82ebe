"""Live views for Server-Sent Events: one feed per (board, region) per gateway process.

Every write announces on Redis pub/sub (``Keys.live``, ``leaderboard/changes.py``) the boards
it changed; the gateway's subscriptions (``serve/read_through.py``) pass each announcement to
``LiveHub.changed``, which marks those feeds dirty. A dirty feed
reads each of its views once (top-N, or a user's neighbourhood) and offers the result to every
watcher of that view: the reads grow with the views watched, never with the watchers. A feed
reads at most ``1 / MIN_GAP_S`` times a second, and less often once the process's watchers
would take more than ``frames_per_s`` frames a second (writing a frame to a socket is the cost
that grows with watchers); a signal that arrives during a read makes another read follow it, so
the last event a watcher gets equals a fresh read. Feeds also read
at each season boundary of their board (the new, empty season) and every ``POLL_S`` as a
safety net. A subscription lost or back marks every feed dirty. See docs/live.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from pydantic_core import to_json

from leaderboard.boards import Board
from leaderboard.changes import Change
from leaderboard.errors import LeaderboardError, NotFound
from leaderboard.serve.ranking import ReadRequest

log = logging.getLogger(__name__)

MIN_GAP_S = 0.1  # at most 10 reads, so 10 events, a second per view
POLL_S = 5.0  # a read without a signal: a lost signal is not a stale view for long
BOUNDARY_SLACK_S = 0.05  # read a moment after a season ends, not a moment before
FRESH_SEASON_US, FRESH_SEASON_POLL_S = 2_000_000, 0.5  # reads in a season's first 2 s
AROUND_SPAN = 2
HEARTBEAT_TICK_S = 0.5  # how often the hub looks for streams due a heartbeat

GONE = b"event: gone\n"  # the board was deleted: the stream ends after saying so

Read = Callable[[ReadRequest], Awaitable[bytes | None]]
Lookup = Callable[[str], Board | None]


@dataclass(frozen=True)
class ViewKey:
    """What a watcher sees: a board's region, its top ``limit``, and a user's neighbourhood."""

    board: str
    region: str
    limit: int
    user_id: str = ""  # '': no user part


class Watcher:
    """One open stream: the newest view it has not sent yet (older ones are skipped), and when
    it is due a heartbeat (``heartbeat_s`` after it last sent anything).

    No timer per wait: the hub's one heartbeat task wakes the streams that are due (``beat``).
    A timer per wait (``asyncio.wait_for``: a task each; ``asyncio.timeout``: a timer handle
    each) cost a gateway holding 1,100 streams ~8% and ~4% of its CPU (py-spy)."""

    def __init__(self, heartbeat_s: float) -> None:
        self._pending: tuple[int, bytes] | None = None
        self._sent: bytes | None = None
        self._ready = asyncio.Event()
        self._beat = False
        self.heartbeat_s = heartbeat_s
        self.beat_at = 0.0
        self.sent()

    def sent(self) -> None:
        """The stream sent something: its next heartbeat is due ``heartbeat_s`` from now."""
        self.beat_at = asyncio.get_running_loop().time() + self.heartbeat_s

    def beat(self) -> None:
        """A heartbeat is due: ``next`` answers None unless a view is waiting."""
        self._beat = True
        self._ready.set()

    def offer(self, seq: int, body: bytes) -> None:
        if body == self._sent:  # back to what the client has: nothing to send
            self._pending = None
            self._ready.clear()
            return
        self._pending = (seq, body)
        self._ready.set()

    async def next(self) -> tuple[int, bytes] | None:
        """The next view to send; None when a heartbeat is due and no view is waiting."""
        while (item := self.take()) is None:
            if self._beat:
                self._beat = False
                return None
            await self._ready.wait()
        self._beat = False
        return item

    def take(self) -> tuple[int, bytes] | None:
        """The view waiting to be sent, if any (it counts as sent)."""
        self._ready.clear()
        item, self._pending = self._pending, None
        if item is not None:
            self._sent = item[1]
        return item


@dataclass
class View:
    """A view's watchers and the last SSE frame (event and data lines) read for it."""

    key: ViewKey
    watchers: set[Watcher] = field(default_factory=set)
    body: bytes | None = None
    seq: int = 0

    def publish(self, body: bytes) -> None:
        if body != self.body:
            self.body, self.seq = body, self.seq + 1
        for watcher in self.watchers:
            watcher.offer(self.seq, body)


class Feed:
    """The views of one (board, region) in this process, read again when they may have changed."""

    def __init__(self, hub: LiveHub, board: str, region: str) -> None:
        self.hub, self.board, self.region = hub, board, region
        self.views: dict[ViewKey, View] = {}
        self.dirty = asyncio.Event()
        self.reads = 0
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while self.views:
            try:
                await asyncio.wait_for(self.dirty.wait(), self._quiet_for())
            except TimeoutError:
                pass
            self.dirty.clear()
            started = time.monotonic()
            await self._refresh()
            await asyncio.sleep(max(0.0, self.hub.gap_s() - (time.monotonic() - started)))

    def _quiet_for(self) -> float:
        """How long to wait without a signal: until the season ends, at most ``POLL_S``."""
        board = self.hub.boards(self.board)
        if board is None or board.schedule.reset is None:
            return POLL_S
        now = int(time.time() * 1_000_000)
        season = board.schedule.season_at(now)
        if season is None:
            return min(POLL_S, (board.start_us - now) / 1e6 + BOUNDARY_SLACK_S)
        started, end = board.schedule.bounds(season)
        if now - started < FRESH_SEASON_US:  # Redis's clock may lag this host's: look again
            return FRESH_SEASON_POLL_S
        return POLL_S if end is None else min(POLL_S, (end - now) / 1e6 + BOUNDARY_SLACK_S)

    async def _refresh(self) -> None:
        views = list(self.views.values())
        self.reads += len(views)
        bodies = await asyncio.gather(*(self.hub.snapshot(v.key) for v in views),
                                      return_exceptions=True)
        for view, body in zip(views, bodies, strict=True):
            if isinstance(body, LeaderboardError):  # e.g. warming: said, and read again later
                kind = b"gone" if type(body) is NotFound else b"problem"
                view.publish(b"event: %s\ndata: %s" % (kind, to_json(
                    {"board": view.key.board, **body.body()})))
            elif isinstance(body, BaseException):
                log.warning("live view %s: read failed: %r", view.key, body)
            else:
                view.publish(b"event: view\ndata: " + body)


class LiveHub:
    """Every feed of this process; ``changed`` tells them about writes."""

    def __init__(self, read: Read, boards: Lookup, max_watchers: int,
                 frames_per_s: int = 2000) -> None:
        self._read = read
        self.boards = boards
        self.max_watchers = max_watchers
        self.frames_per_s = frames_per_s
        self.feeds: dict[tuple[str, str], Feed] = {}
        self.watchers = 0
        self._heartbeats: asyncio.Task[None] | None = None

    def full(self) -> bool:
        return self.watchers >= self.max_watchers

    def gap_s(self) -> float:
        """The least time between two reads of a feed: ``MIN_GAP_S``, or longer when every
        watcher getting an event that often would pass ``frames_per_s`` frames a second."""
        return max(MIN_GAP_S, self.watchers / self.frames_per_s)

    def stats(self) -> dict[str, int]:
        """Open streams, views and feeds of this process, and how often those feeds read."""
        return {"watchers": self.watchers, "feeds": len(self.feeds),
                "views": sum(len(f.views) for f in self.feeds.values()),
                "view_reads": sum(f.reads for f in self.feeds.values())}  # of the open feeds

    async def snapshot(self, key: ViewKey) -> bytes:
        """The view's event body now: ``{"board", "top", "me"}`` (``me``: null without a user,
        or when the user is not on the board)."""
        top = self._read(ReadRequest("top", key.region, key.limit, "", key.board))
        if not key.user_id:
            me = None
            first = await top
        else:
            first, me = await asyncio.gather(top, self._read(
                ReadRequest("around", key.region, AROUND_SPAN, key.user_id, key.board)))
        assert first is not None
        return b'{"board":"%s","top":%s,"me":%s}' % (key.board.encode(), first, me or b"null")

    async def events(self, key: ViewKey, heartbeat_s: float) -> AsyncIterator[bytes]:
        """One watcher's stream: SSE frames of its view, a comment when nothing changed for
        ``heartbeat_s``; leaving (the client went away) frees its place."""
        watcher = self._join(key, heartbeat_s)
        try:
            yield b"retry: 2000\n\n"
            sent = -MIN_GAP_S
            while True:
                item = await watcher.next()
                watcher.sent()
                if item is None:
                    yield b": keep-alive\n\n"
                    continue
                wait = sent + MIN_GAP_S - time.monotonic()
                if wait > 0:  # two reads finished closer than MIN_GAP_S: send the newer later
                    await asyncio.sleep(wait)
                    item = watcher.take() or item
                sent = time.monotonic()
                yield b"id: %d\n%s\n\n" % item
                if item[1].startswith(GONE):  # a reconnect would be a 404
                    return
        finally:
            self._leave(key, watcher)

    async def _beat(self) -> None:
        """While this process holds streams: wake those due a heartbeat."""
        loop = asyncio.get_running_loop()
        while self.watchers:
            await asyncio.sleep(HEARTBEAT_TICK_S)
            now = loop.time()
            for feed in self.feeds.values():
                for view in feed.views.values():
                    for watcher in view.watchers:
                        if now >= watcher.beat_at:
                            watcher.beat()

    def _join(self, key: ViewKey, heartbeat_s: float) -> Watcher:
        feed = self.feeds.get((key.board, key.region))
        if feed is None:
            feed = self.feeds[(key.board, key.region)] = Feed(self, key.board, key.region)
        view = feed.views.get(key)
        if view is None:
            view = feed.views[key] = View(key)
            feed.dirty.set()  # a new view: read it now
        watcher = Watcher(heartbeat_s)
        view.watchers.add(watcher)
        self.watchers += 1
        if self._heartbeats is None or self._heartbeats.done():
            self._heartbeats = asyncio.get_running_loop().create_task(self._beat())
        if view.body is not None:  # as of the last read; a pending change follows it
            watcher.offer(view.seq, view.body)
        if feed.task is None or feed.task.done():
            feed.task = asyncio.get_running_loop().create_task(feed.run())
        return watcher

    def _leave(self, key: ViewKey, watcher: Watcher) -> None:
        self.watchers -= 1
        feed = self.feeds.get((key.board, key.region))
        view = None if feed is None else feed.views.get(key)
        if feed is None or view is None:
            return
        view.watchers.discard(watcher)
        if not view.watchers:
            del feed.views[key]
        if not feed.views:
            del self.feeds[(key.board, key.region)]
            feed.dirty.set()  # its loop sees no views and ends

    def changed(self, change: Change | None) -> None:
        """A write changed these boards of ``change.board`` (None: anything may have changed,
        e.g. the subscription was lost): their feeds are dirty."""
        if change is None:
            for feed in self.feeds.values():
                feed.dirty.set()
            return
        for region in change.boards:
            dirty = self.feeds.get((change.board, region))
            if dirty is not None:
                dirty.dirty.set()
