"""Gateway: the HTTP ingress deployment. Its replica builds a ``Context`` (clients, batchers)
and serves the route table through the lean ASGI app; writes go to shard actors, reads to the
ranking replicas."""

from __future__ import annotations

import logging
from typing import Any

from ray import serve

from leaderboard.serve.asgi import App
from leaderboard.serve.context import Context
from leaderboard.serve.routes import ROUTES
from leaderboard.settings import Settings


def serve_logs() -> None:
    """Our modules' warnings in the replica's Serve log (stderr below WARNING is dropped)."""
    ours, serve_logger = logging.getLogger("leaderboard"), logging.getLogger("ray.serve")
    for handler in serve_logger.handlers:
        if handler not in ours.handlers:
            ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def build_asgi(context: Context) -> App:
    """The ASGI app of one replica (also what tests drive without Ray)."""
    return App(context, ROUTES, Context.guard, context.start)


@serve.ingress()
class Gateway:
    """Ingress deployment body: ``__serve_build_asgi_app__`` runs after ``__init__``."""

    def __init__(
        self, settings: Settings, ranker: Any, shards: dict[str, Any], writers: list[Any],
        ranking_replicas: int = 1,
    ) -> None:
        serve_logs()
        self._context = Context(settings, ranker, shards, writers, ranking_replicas)

    def __serve_build_asgi_app__(self) -> App:
        return build_asgi(self._context)
