"""A small Server-Sent Events client for the tests: events parsed as they arrive."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    """One SSE event (``data`` parsed as JSON) and when it arrived (monotonic seconds)."""

    id: str
    event: str
    data: Any
    at: float


class EventStream:
    """The events and comments of one open stream, read by a task of its own (so a test's
    timeout never cuts a read in half)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def next(self, timeout: float = 10.0) -> Event:
        """The next event (comments are collected in ``comments``)."""
        event = await asyncio.wait_for(self._events.get(), timeout)
        if event is None:
            raise EOFError("the stream ended")
        return event

    def close(self) -> None:
        self._reader.cancel()

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if "data" in fields:
                        await self._events.put(Event(
                            fields.get("id", ""), fields.get("event", "message"),
                            json.loads(fields["data"]), time.monotonic()))
                    fields = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        finally:
            await self._events.put(None)

    async def until(self, predicate: Any, timeout: float = 10.0) -> Event:
        """The first event for which ``predicate(event.data)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            if event.event == "view" and predicate(event.data):
                return event


@asynccontextmanager
async def live(client: httpx.AsyncClient, board: str, headers: dict[str, str] | None = None,
               **params: Any) -> AsyncIterator[EventStream]:
    """An open ``/boards/{board}/live`` stream (the answer must be 200)."""
    async with client.stream("GET", f"/boards/{board}/live", params=params,
                             headers=headers or {}) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        stream = EventStream(response)
        try:
            yield stream
        finally:
            stream.close()
