"""The soak's load: a fixed-rate mix of score writes, rank reads and top-100 reads.

A minimal HTTP/1.1 keep-alive client on asyncio streams (no HTTP library: ~10x less CPU per
request than httpx, which matters on 2 cores shared with the service). Requests are tickets
at ``start + k / rate``; ``connections`` workers take the next ticket, wait for its time and
send it, so the rate holds as long as latency stays under ``connections / rate``. The run ends
on time: tickets still unsent then are skipped (and counted), not sent late.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

TIMEOUT_S = 10.0
REGIONS = ("GLOBAL", "ASIA", "EU", "NA")


class Conn:
    """One keep-alive connection; reconnects after an error or a ``Connection: close``."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Send one request and read its answer: (status, body)."""
        try:
            return await asyncio.wait_for(self._exchange(method, path, body, headers or {}), TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    async def _exchange(self, method: str, path: str, body: bytes,
                        headers: dict[str, str]) -> tuple[int, bytes]:
        if self._rw is None:
            self._rw = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._rw
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: "
                     f"{len(body)}\r\nContent-Type: application/json\r\n{head}\r\n".encode() + body)
        status = int((await reader.readline()).split()[1])
        fields: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            fields[k.strip().lower()] = v.strip().lower()
        if "content-length" in fields:
            data = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            data = await self._chunked(reader)
        else:
            data = await reader.read()
            fields["connection"] = "close"
        if fields.get("connection") == "close":
            self.close()
        return status, data

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return b"".join(parts)

    def close(self) -> None:
        if self._rw is not None:
            self._rw[1].close()
            self._rw = None


@dataclass
class Tally:
    """Requests per operation: sent, answered as expected, failed (with the reasons)."""

    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    late: int = 0  # tickets sent more than a second after their time (the load fell behind)
    skipped: int = 0  # tickets not sent at all: their time came after the end of the run
    latencies: list[float] = field(default_factory=list)

    @property
    def total_failed(self) -> int:
        return sum(self.failed.values())

    @property
    def total_ok(self) -> int:
        return sum(self.ok.values())

    def summary(self) -> str:
        lat = sorted(self.latencies) or [0.0]

        def p(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

        ops = ", ".join(f"{op} {self.ok[op]}/{self.ok[op] + self.failed[op]}"
                        for op in sorted(set(self.ok) | set(self.failed)))
        return (f"requests: {self.total_ok} ok, {self.total_failed} failed ({ops}); late tickets "
                f"{self.late}, skipped {self.skipped}; latency p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms"
                + (f"; failures: {dict(self.reasons.most_common(5))}" if self.reasons else ""))


def parse_mix(text: str) -> list[str]:
    """``write=8,rank=8,top=4`` -> a cycle of operations with those weights, interleaved."""
    weights = {k.strip(): int(v) for k, _, v in (p.partition("=") for p in text.split(","))}
    unknown = set(weights) - {"write", "rank", "top"}
    if unknown or not any(weights.values()):
        raise ValueError(f"mix: operations are write, rank, top with integer weights; got {text}")
    cycle = [op for op, w in weights.items() for _ in range(w)]
    random.Random(0).shuffle(cycle)
    return cycle


class Load:
    """Players ``soak-0``..``soak-{n-1}`` with tokens, and the fixed-rate mix over them."""

    def __init__(self, host: str, port: int, tokens: dict[str, str], mix: list[str],
                 idem_share: float) -> None:
        self.host, self.port, self.tokens, self.mix = host, port, tokens, mix
        self.users = sorted(tokens)
        self.idem_share = idem_share
        self.tally = Tally()
        self._rand = random.Random(1)
        self._seq = itertools.count()

    async def seed(self, connections: int, attempts: int = 30) -> Tally:
        """One write per player, so every rank read finds its user; a refused one is retried
        (a second apart) as the service may still be settling: the seed's own tally."""
        queue = list(self.users)

        async def worker() -> None:
            conn = Conn(self.host, self.port)
            while queue:
                user = queue.pop()
                for _ in range(attempts):
                    if await self._send(conn, "write", user):
                        break
                    await asyncio.sleep(1)
            conn.close()

        await asyncio.gather(*(worker() for _ in range(connections)))
        seeded, self.tally = self.tally, Tally()
        return seeded

    async def run(self, rate: float, seconds: float, connections: int) -> None:
        """The mix at ``rate`` requests/s for ``seconds``."""
        tickets = itertools.count()
        start = time.monotonic()
        total = int(rate * seconds)

        async def worker() -> None:
            conn = Conn(self.host, self.port)
            while (k := next(tickets)) < total:
                delay = start + k / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif time.monotonic() > start + seconds:  # the run is over: no catching up
                    break
                elif delay < -1:
                    self.tally.late += 1
                sent[0] += 1
                await self._send(conn, self.mix[k % len(self.mix)], self._rand.choice(self.users))
            conn.close()

        sent = [0]
        await asyncio.gather(*(worker() for _ in range(connections)))
        self.tally.skipped = total - sent[0]

    async def _send(self, conn: Conn, op: str, user: str) -> bool:
        method, path, body, headers = self._request(op, user)
        t0 = time.perf_counter()
        try:
            status, data = await conn.request(method, path, body, headers)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            status, data = 0, type(exc).__name__.encode()
        self.tally.latencies.append(time.perf_counter() - t0)
        if status == 200:
            self.tally.ok[op] += 1
            return True
        self.tally.failed[op] += 1
        self.tally.reasons[f"{op} {status} {data[:120]!r}"] += 1
        return False

    def _request(self, op: str, user: str) -> tuple[str, str, bytes, dict[str, str]]:
        if op == "rank":
            return "GET", f"/rank/{user}?region=GLOBAL", b"", {}
        if op == "top":
            return "GET", f"/top?region={self._rand.choice(REGIONS)}&limit=100", b"", {}
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        if self._rand.random() < self.idem_share:
            headers["Idempotency-Key"] = f"soak-{next(self._seq)}"
        body = json.dumps({"score": self._rand.randrange(1_000_000)}).encode()
        return "POST", "/score/update", body, headers


def region_of(i: int) -> str:
    """Player ``i``'s region (every region gets players, GLOBAL-only ones too)."""
    return REGIONS[i % len(REGIONS)]
