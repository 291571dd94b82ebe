"""``make run``: the whole system on this machine, in the foreground, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading

from pydantic import ValidationError

from leaderboard.settings import Settings

log = logging.getLogger("leaderboard")


def load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            print(f"configuration error: {where}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def prepare_ray_env(settings: Settings) -> None:
    """Before Ray is imported: Serve's settings, Ray's ports on loopback whatever ``HOST`` is, and
    Ray's token authentication with a token file readable by us only."""
    from leaderboard.serve.ray_auth import token_env
    from leaderboard.serve.ray_env import apply_serve_env

    try:
        apply_serve_env(settings.port, one_machine=True)
    except ValueError as exc:  # METRICS_HOST
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    os.environ.update(token_env(settings.state_dir))


def check_metrics_port(port: int, host: str = "127.0.0.1") -> None:
    """Ray's metrics agent exits when its port is taken, and Ray then only says that the node
    timed out starting: say what is wrong before starting it."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            print(f"configuration error: METRICS_EXPORT_PORT {port} is in use (another make run?);"
                  " set METRICS_EXPORT_PORT to a free port", file=sys.stderr)
            raise SystemExit(2) from None


def metrics_lines(settings: Settings) -> list[str]:
    """Where Prometheus finds this instance's metrics (docs/metrics.md)."""
    from leaderboard.serve.ray_env import LOOPBACK, METRICS_PORT, metrics_host

    haproxy = os.environ.get("RAY_SERVE_HAPROXY_METRICS_PORT", str(METRICS_PORT))
    return [f"metrics: http://{LOOPBACK}:{settings.metrics_export_port}/metrics (Ray's metrics "
            "agent: leaderboard_*, Serve's ray_serve_*, Ray's own)",
            f"metrics: http://{metrics_host()}:{haproxy}/metrics (HAProxy's own)"]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    prepare_ray_env(settings)
    import ray
    from ray import serve

    from leaderboard.pipeline.db import ensure_database
    from leaderboard.serve.app import build_app
    from leaderboard.serve.config import load
    from leaderboard.serve.ray_env import LOOPBACK

    asyncio.run(ensure_database(settings))
    check_metrics_port(settings.metrics_export_port, LOOPBACK)
    config = load()
    ray.init(
        address="local",  # a new local instance, never a cluster already running here
        num_cpus=settings.local_ray_cpus,
        include_dashboard=False,
        _node_ip_address=LOOPBACK,
        namespace=settings.ray_namespace,
        logging_level=logging.WARNING,
        _metrics_export_port=settings.metrics_export_port,  # on the node's address: loopback
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_app(settings, config.deployments), name=config.name,
                  route_prefix=config.route_prefix, logging_config=config.logging_config)
        log.info("serving on http://%s:%d/ (the web page; API docs at /docs); Ctrl-C stops",
                 settings.host, settings.port)
        for line in metrics_lines(settings):
            log.info("%s", line)
        stop.wait()
        log.info("stopping")
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
        log.info("stopped")


if __name__ == "__main__":
    main()
