"""One pub/sub connection per Redis instance in each gateway process, and the read barrier.

Every message published on the instance reaches ``on_message`` in publication order, handled
synchronously as it is parsed. ``barrier()`` sends PING on that same connection: Redis answers
it after every message it published before the PING arrived, so when the pong is handled every
write applied before the barrier was sent (its announcement is published inside its script) has
been handled too. Barriers asked for in the same turn of the event loop share one PING.

While the connection is down nothing can be vouched for: ``barrier()`` raises ``NotSubscribed``
and, at the moment the connection is lost and again once it is back, ``on_reset`` runs (the
cache drops everything, the live views read again).
A pong missing for ``PONG_TIMEOUT_S`` counts as a lost connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url

from leaderboard.redis_client import pack
from leaderboard.shards import redacted

log = logging.getLogger(__name__)

PING = pack(["PING"])
PONG_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 2.0
RETRY_S = 0.5

OnMessage = Callable[[str, bytes], None]


class NotSubscribed(Exception):
    """The instance's subscription is down: nothing published there can be vouched for."""


class _Link(asyncio.Protocol):
    """The socket: parses replies as bytes arrive and hands each to the subscriber."""

    def __init__(self, owner: Subscriber) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's is no subclass)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                self.owner.on_reply(reply)
        except Exception as exc:  # a protocol error or a bug: nothing after it can be trusted
            log.warning("subscription %s: %r; reconnecting", self.owner.name, exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._gone()

    def _gone(self) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
            self.owner.lose(self)  # at once: not one more turn of the loop on a dead link


class Subscriber:
    """The subscription to ``channels`` on one instance, kept up by ``run``."""

    def __init__(self, url: str, channels: Sequence[str], on_message: OnMessage,
                 on_reset: Callable[[], None]) -> None:
        self.url, self.name = url, redacted(url)
        self.channels = list(channels)
        self.ready = False
        self.resets = 0
        self._on_message = on_message
        self._on_reset = on_reset
        self._link: _Link | None = None
        self._confirmed = 0
        self._subscribed: asyncio.Future[None] | None = None
        self._waiting: list[asyncio.Future[None]] = []
        self._pings: deque[tuple[float, list[asyncio.Future[None]]]] = deque()

    # -- the barrier ---------------------------------------------------------------------------

    def barrier(self) -> asyncio.Future[None]:
        """Done once every message published before now has been handled."""
        if not self.ready:
            raise NotSubscribed(self.name)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._send_ping)
        self._waiting.append(future)
        return future

    def _send_ping(self) -> None:
        group, self._waiting = self._waiting, []
        if not self.ready or self._link is None:
            _fail(group)
            return
        self._pings.append((time.monotonic(), group))
        self._link.write(PING)

    # -- replies -------------------------------------------------------------------------------

    def on_reply(self, reply: Any) -> None:
        if isinstance(reply, hiredis.ReplyError):
            raise reply  # AUTH refused, or a command this connection should never send
        if not isinstance(reply, list):
            return  # AUTH's +OK
        kind = reply[0]
        if kind == b"message":
            self._on_message(reply[1].decode(), reply[2])
        elif kind == b"pong":
            for future in self._pings.popleft()[1]:
                if not future.done():
                    future.set_result(None)
        elif kind == b"subscribe":
            self._confirmed += 1
            if self._confirmed == len(self.channels) and self._subscribed is not None:
                self._subscribed.set_result(None)

    # -- the connection ------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay subscribed for good; each loss resets what depends on it."""
        while True:
            try:
                await self._session()
            except Exception as exc:  # Redis away, or a bug: never leave the process unsubscribed
                log.warning("subscription %s: %r; again in %.1f s", self.name, exc, RETRY_S)
            await asyncio.sleep(RETRY_S)

    async def _session(self) -> None:
        self._subscribed = asyncio.get_running_loop().create_future()
        self._confirmed = 0
        link = self._link = await self._connect()
        try:
            await asyncio.wait([self._subscribed, link.lost], timeout=CONNECT_TIMEOUT_S,
                               return_when=asyncio.FIRST_COMPLETED)
            if not self._subscribed.done() or link.lost.done():
                raise ConnectionError("not subscribed")
            self.ready = True
            self._on_reset()  # what was missed while down is not known: look again
            while not link.lost.done():
                await asyncio.wait([link.lost], timeout=PONG_TIMEOUT_S / 2)
                if self._pings and time.monotonic() - self._pings[0][0] > PONG_TIMEOUT_S:
                    log.warning("subscription %s: no pong for %.1f s; reconnecting", self.name,
                                PONG_TIMEOUT_S)
                    break
        finally:
            link.close()

    async def _connect(self) -> _Link:
        options = parse_url(self.url)
        loop = asyncio.get_running_loop()
        link = self._link = _Link(self)
        if "path" in options:
            connecting = loop.create_unix_connection(lambda: link, options["path"])
        else:
            secure = ssl.create_default_context() if self.url.startswith("rediss") else None
            connecting = loop.create_connection(lambda: link, options["host"],
                                                options.get("port", 6379), ssl=secure)
        await asyncio.wait_for(connecting, CONNECT_TIMEOUT_S)
        hello: list[bytes] = []
        if options.get("password"):
            user = [options["username"]] if options.get("username") else []
            hello.append(pack(["AUTH", *user, options["password"]]))
        hello.append(pack(["SUBSCRIBE", *self.channels]))
        link.write(b"".join(hello))
        return link

    def lose(self, link: _Link) -> None:
        """``link`` is gone: no barrier holds, whatever relied on it is reset."""
        if link is not self._link:
            return
        self._link = None
        was_ready, self.ready = self.ready, False
        while self._pings:
            _fail(self._pings.popleft()[1])
        _fail(self._waiting)
        self._waiting = []
        if was_ready:
            self.resets += 1
            self._on_reset()


def _fail(group: list[asyncio.Future[None]]) -> None:
    for future in group:
        if not future.done():
            future.set_exception(NotSubscribed())
