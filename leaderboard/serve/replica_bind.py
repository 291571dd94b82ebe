"""Serve replicas' gRPC server on the node's address instead of every interface.

Ray Serve 2.60 opens each replica's inter-deployment gRPC server on ``[::]:0``
(ray/serve/_private/replica.py, ``add_port_to_grpc_server(self._server, "[::]:0")``) and has no
setting for that address; every other Ray server binds the node's address. Ray imports the
modules named in its ``preload_python_modules`` setting into every worker before any actor
starts, so this module is named there (``make run``, ``scripts/local-cluster``): importing it
wraps that one helper so a ``[::]`` address becomes the node's own (127.0.0.1 on one machine).
Anything else passes through unchanged, and if Ray renames the helper nothing is wrapped (the
listening-socket tests then fail, which is how that would be noticed).
"""

from __future__ import annotations

from typing import Any

from ray._common import tls_utils

MODULE = __name__
ANY = "[::]:"

_original = getattr(tls_utils, "add_port_to_grpc_server", None)


def add_port_on_node_ip(server: Any, address: str) -> int:
    """Serve's helper, with ``[::]:port`` replaced by the node's address and the same port."""
    assert _original is not None
    if address.startswith(ANY):
        import ray

        node_ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        host = f"[{node_ip}]" if ":" in node_ip else node_ip
        address = f"{host}:{address[len(ANY):]}"
    return int(_original(server, address))


if _original is not None:
    tls_utils.add_port_to_grpc_server = add_port_on_node_ip
