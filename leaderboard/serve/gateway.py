"""Gateway: the HTTP ingress deployment. Its replica builds a ``Context`` (clients, batchers)
and serves the route table through the lean ASGI app; writes go to shard actors, reads to the
ranking replicas."""

from __future__ import annotations

from typing import Any

from ray import serve

from leaderboard.serve.asgi import App
from leaderboard.serve.context import Context
from leaderboard.serve.routes import ROUTES
from leaderboard.settings import Settings


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
        self._context = Context(settings, ranker, shards, writers, ranking_replicas)

    def __serve_build_asgi_app__(self) -> App:
        return build_asgi(self._context)
