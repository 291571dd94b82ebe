"""The router of the ASGI application: each ``Route`` compiled once (its input validators
built up front), plain paths found by dict, parameterised ones by a segment trie; an unknown
path is ``NotFound`` (404), a known path without the method ``MethodNotAllowed`` (405).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from leaderboard.errors import MethodNotAllowed, NotFound
from leaderboard.serve.asgi_types import Route


@dataclass
class Compiled:
    """A route with the validators of its body, query and path built once."""

    route: Route
    body: TypeAdapter[Any] | None
    query: TypeAdapter[Any] | None
    path: TypeAdapter[Any] | None


@dataclass
class _Node:
    methods: dict[str, Compiled] = field(default_factory=dict)
    children: dict[str, _Node] = field(default_factory=dict)
    param: tuple[str, _Node] | None = None


def _adapter(model: Any) -> TypeAdapter[Any] | None:
    return None if model is None else TypeAdapter(model)


def _compile(route: Route) -> Compiled:
    body = route.body
    return Compiled(route, _adapter(body | None if body and route.body_optional else body),
                    _adapter(route.query), _adapter(route.path_model))


class Router:
    """Plain paths by dict, parameterised ones by a segment trie; 404/405 as JSON."""

    def __init__(self, routes: list[Route]) -> None:
        self._static: dict[str, dict[str, Compiled]] = {}
        self._root = _Node()
        for route in routes:
            compiled = _compile(route)
            if "{" not in route.path:
                self._static.setdefault(route.path, {})[route.method] = compiled
            else:
                self._insert(route.path, compiled)

    def _insert(self, path: str, compiled: Compiled) -> None:
        node = self._root
        for seg in path.strip("/").split("/"):
            if seg.startswith("{"):
                if node.param is None:
                    node.param = (seg[1:-1], _Node())
                node = node.param[1]
            else:
                node = node.children.setdefault(seg, _Node())
        node.methods[compiled.route.method] = compiled

    def _methods(self, path: str) -> tuple[dict[str, Compiled], dict[str, str]] | None:
        found = self._static.get(path)
        if found is not None:
            return found, {}
        node, params = self._root, {}
        for seg in path.strip("/").split("/"):
            child = node.children.get(seg)
            if child is None and node.param is not None and seg:
                params[node.param[0]] = seg
                child = node.param[1]
            if child is None:
                return None
            node = child
        return (node.methods, params) if node.methods else None

    def match(self, method: str, path: str) -> tuple[Compiled, dict[str, str]]:
        found = self._methods(path)
        if found is None:
            raise NotFound("Not Found")
        methods, params = found
        compiled = methods.get(method)
        if compiled is None:
            raise MethodNotAllowed(sorted(methods))
        return compiled, params
