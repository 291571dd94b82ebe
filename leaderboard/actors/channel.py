"""The shard's direct channel: the gateways' write groups over one TCP connection, not Ray calls.

A Ray actor call costs both processes far more CPU than the write it carries: at ~1,800 single
writes/s the gateway spent ~100 µs per write submitting calls and the shard actor ~130 µs
receiving them (py-spy, docs/performance.md), where the writes' own Redis round trip is a few
tens. So each shard actor also listens on its node's address (the one Ray's own servers use:
127.0.0.1 on one machine), on a port the OS picks, and each gateway process keeps one
connection per shard, found through the actor (``channel_address``, a Ray call made once per
connection). Ray still places, restarts and names the actor; the shard is still the only
process that runs its writes, so its unstored ledger, rollover and recovery are unchanged.

Frames: a 12-byte head (payload length, request id) and a pickled payload: the command rows
one way; a status byte, then the result rows (or the error's text) the other. Requests on one
connection run concurrently, like Ray calls on the actor, and are answered by id. A connection
starts with a 32-byte token, an HMAC of the shard's name under ``JWT_SECRET``: only a process
holding the deployment's secret (the gateways) is heard; anything else is closed unread.

A connection that breaks fails its requests with ``ShardUnreachable`` (a 503 to the client,
like a Ray call to a restarting actor); the next request asks the actor again for its address,
which waits for a restarted actor the way a Ray call would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import pickle
import socket
import struct
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

HEAD = struct.Struct(">IQ")  # payload length, request id
OK, FAILED = b"\x00", b"\x01"
TOKEN_SIZE = 32
MAX_FRAME = 256 * 1024 * 1024

Rows = list[tuple[Any, ...]]
Handler = Callable[[Rows], Awaitable[Rows]]
Address = tuple[str, int]


class ShardUnreachable(Exception):
    """The shard's channel could not be opened, or broke with requests on it."""


class ShardFailed(Exception):
    """The shard raised while running a request (a bug); carries the shard's traceback."""

    def __init__(self, trace: str) -> None:
        super().__init__(f"the shard failed; its traceback:\n{trace}")


def channel_token(secret: str, board: str, shard: str) -> bytes:
    """What a connection to ``shard``'s channel must open with."""
    return hmac.new(secret.encode(), f"shard-channel:{board}:{shard}".encode(),
                    hashlib.sha256).digest()


class ChannelServer:
    """The shard actor's side: runs ``handler`` for each request, on the actor's event loop."""

    def __init__(self, handler: Handler, token: bytes) -> None:
        self._handler = handler
        self._token = token
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.address: Address = ("", 0)

    async def start(self, host: str) -> Address:
        self._server = await asyncio.start_server(self._serve, host, 0)
        name = self._server.sockets[0].getsockname()
        self.address = (str(name[0]), int(name[1]))
        return self.address

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            token = await reader.readexactly(TOKEN_SIZE)
            if not hmac.compare_digest(token, self._token):
                log.warning("shard channel: a connection without the deployment's token")
                return
            _no_delay(writer)
            self._writers.add(writer)
            while True:
                size, rid = HEAD.unpack(await reader.readexactly(HEAD.size))
                if size > MAX_FRAME:
                    return
                body = await reader.readexactly(size)
                task = asyncio.get_running_loop().create_task(self._answer(writer, rid, body))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def close(self) -> None:
        """Stop listening and drop every connection (their requests in flight fail)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, rid: int, body: bytes) -> None:
        try:
            payload = OK + pickle.dumps(await self._handler(pickle.loads(body)), protocol=5)
        except Exception as exc:  # a bug in the handler: the caller answers 500, logs it
            trace = "".join(traceback.format_exception(exc))
            payload = FAILED + trace.encode()[-8000:]
        if not writer.is_closing():
            writer.write(HEAD.pack(len(payload), rid) + payload)


class _Connection:
    """One open connection: its requests in flight, answered by id as they come back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Rows]] = {}
        self._next_id = 0
        self._reading = asyncio.get_running_loop().create_task(self._read(reader))

    @property
    def open(self) -> bool:
        return not self.writer.is_closing()

    async def call(self, rows: Rows) -> Rows:
        self._next_id += 1
        rid = self._next_id
        future: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        body = pickle.dumps(rows, protocol=5)
        self.writer.write(HEAD.pack(len(body), rid) + body)
        try:
            return await future
        finally:
            self.pending.pop(rid, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        why = "closed by the shard"
        try:
            while True:
                size, rid = HEAD.unpack(await reader.readexactly(HEAD.size))
                self._settle(rid, await reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            why = repr(exc)
        finally:
            self.close(why)

    def _settle(self, rid: int, body: bytes) -> None:
        future = self.pending.get(rid)
        if future is None or future.done():
            return
        if body[:1] == OK:
            future.set_result(pickle.loads(body[1:]))
        else:
            future.set_exception(ShardFailed(body[1:].decode(errors="replace")))

    def close(self, why: str) -> None:
        """Fail every request still on this connection."""
        self.writer.close()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ShardUnreachable(f"shard channel lost: {why}"))
        if self._reading is not asyncio.current_task():
            self._reading.cancel()


class ChannelClient:
    """A gateway's connection to one shard; ``resolve`` asks the actor for its address."""

    def __init__(self, resolve: Callable[[], Awaitable[Address]], token: bytes) -> None:
        self._resolve = resolve
        self._token = token
        self._conn: _Connection | None = None
        self._connecting = asyncio.Lock()

    async def call(self, rows: Rows) -> Rows:
        """The shard's answer rows for ``rows``; ``ShardUnreachable`` if the channel fails."""
        conn = self._conn if self._conn is not None and self._conn.open else \
            await self._connect()
        return await conn.call(rows)

    async def _connect(self) -> _Connection:
        async with self._connecting:
            if self._conn is None or not self._conn.open:
                host, port = await self._resolve()
                try:
                    reader, writer = await asyncio.open_connection(host, port)
                except OSError as exc:
                    raise ShardUnreachable(f"shard channel {host}:{port}: {exc}") from exc
                _no_delay(writer)
                writer.write(self._token)
                self._conn = _Connection(reader, writer)
            return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close("closed by the gateway")


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
