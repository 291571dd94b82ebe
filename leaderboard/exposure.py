"""Which processes listen where: the check behind "nothing listens off loopback".

Used by ``scripts/local-cluster --smoke`` and the tests that start ``make run``; see the README,
*Network exposure and secrets*, and docs/deploy.md, *Ports*.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket and the process that holds it."""

    pid: int
    name: str
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # [::ffff:127.0.0.1] is loopback; [::] and 0.0.0.0 are not
        return ip.is_loopback

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.name}) on {self.address}:{self.port}"


def with_descendants(pids: Iterable[int]) -> list[psutil.Process]:
    """The processes ``pids`` and every process below them (those still alive)."""
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for p in (root, *root.children(recursive=True)):
                found[p.pid] = p
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


def listeners(processes: Iterable[psutil.Process]) -> list[Listener]:
    """Every listening TCP socket of ``processes``."""
    out: list[Listener] = []
    for p in processes:
        try:
            name = p.name()
            conns = p.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        out.extend(Listener(p.pid, name, c.laddr.ip, c.laddr.port)
                   for c in conns if c.status == psutil.CONN_LISTEN)
    return sorted(out, key=lambda s: (s.pid, s.port))


def off_loopback(found: Iterable[Listener], allowed: Iterable[int] = ()) -> list[Listener]:
    """The sockets of ``found`` bound to anything but loopback, except on ``allowed`` ports."""
    permitted = set(allowed)
    return [s for s in found if not s.loopback and s.port not in permitted]
