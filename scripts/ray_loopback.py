"""Ray's and Serve's own command lines, with 127.0.0.1 as this machine's Ray address.

Ray on Linux replaces a loopback address (``ray start --node-ip-address=127.0.0.1``, or the
head's ``--address=127.0.0.1:PORT`` a worker joins) with the address of the default route
(``ray._private.services.resolve_ip_for_localhost``): the nodes would listen on every interface
and look for each other there. Its one-machine switch, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
keeps 127.0.0.1, and ``scripts/local-cluster`` exports it to every node (the processes a node
starts, e.g. the dashboard connecting to the GCS, resolve addresses too), but the ``ray start``
command then refuses worker nodes. This runs the unchanged CLI with that refusal lifted and the
address lookup answering 127.0.0.1.

Usage: ray_loopback.py ray start ... | ray_loopback.py serve start ...
"""

from __future__ import annotations

import sys

import ray._private.worker
from ray._private import ray_constants, services

LOOPBACK = "127.0.0.1"


def node_ip_address(address: str | None = None) -> str:
    """This process's node address once connected, else 127.0.0.1 (never the default route's)."""
    node = ray._private.worker._global_node
    return str(node.node_ip_address) if node is not None else LOOPBACK


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("ray", "serve"):
        raise SystemExit(__doc__)
    services.get_node_ip_address = node_ip_address
    ray_constants.ENABLE_RAY_CLUSTER = True  # worker nodes may join (on this machine)
    tool, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    if tool == "ray":
        from ray.scripts.scripts import main as cli
    else:
        from ray.serve.scripts import cli
    sys.exit(cli())  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
