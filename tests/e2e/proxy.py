"""A TCP proxy to Redis, on its own thread, that can swallow the reply to one script call, and
hold back what subscribers receive."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from tests.e2e.servers import free_port


class ReplyDroppingProxy:
    """Forwards bytes both ways; once armed, the next EVALSHA runs on Redis but its reply is lost.

    That is the ambiguous failure a client cannot tell apart from a lost request: the write
    happened, the client timed out.
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.dropped = 0
        self.subscriber_delay = 0.0  # what a subscribed connection receives arrives this late
        self._armed = threading.Event()
        self._needle = b""
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def arm(self, needle: bytes = b"") -> None:
        """Drop the reply to the next script call whose request contains ``needle``: the guard
        and the reads run scripts too, on other connections, and must not take the drop."""
        self._needle = needle
        self._armed.set()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        drop_next, subscribed = asyncio.Event(), asyncio.Event()
        late: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def client_to_redis() -> None:
            while data := await reader.read(65536):
                if b"SUBSCRIBE" in data.upper():
                    subscribed.set()
                if self._armed.is_set() and b"EVALSHA" in data.upper() and self._needle in data:
                    self._armed.clear()
                    drop_next.set()
                up_writer.write(data)
                await up_writer.drain()

        async def redis_to_client() -> None:
            while data := await up_reader.read(65536):
                if drop_next.is_set():
                    drop_next.clear()
                    self.dropped += 1
                    continue
                if subscribed.is_set():  # in order, each chunk subscriber_delay after it came
                    late.put_nowait((time.monotonic() + self.subscriber_delay, data))
                    continue
                writer.write(data)
                await writer.drain()

        async def send_late() -> None:
            while True:
                due, data = await late.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.ensure_future(client_to_redis()),
                 asyncio.ensure_future(redis_to_client()), asyncio.ensure_future(send_late())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the proxy is closing; end normally (asyncio's stream callback would log a
            # cancelled connection task as an error)
        finally:  # one side closed (or the proxy is closing): stop the other pump too
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (writer, up_writer):
                with contextlib.suppress(OSError):
                    w.close()

    async def _shutdown(self) -> None:
        """Stop listening and end every connection's tasks, so none is left pending."""
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
