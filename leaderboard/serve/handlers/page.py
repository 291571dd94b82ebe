"""The web page at ``/``: static files shipped in the package (no build step, no CDN)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, Field

from leaderboard.errors import NotFound
from leaderboard.serve.asgi import Call, Reply, Route

ASSETS = {"app.js": b"text/javascript; charset=utf-8", "app.css": b"text/css; charset=utf-8"}


class AssetPath(BaseModel):
    name: str = Field(max_length=64)


@lru_cache(maxsize=8)
def _file(name: str) -> bytes:
    return files("leaderboard.serve").joinpath("static", name).read_bytes()


async def index(ctx: Any, call: Call) -> Reply:
    """The page; it learns where the API is mounted and which regions exist from the HTML."""
    regions = ",".join(ctx.settings.region_list).encode()
    page = _file("index.html").replace(b"__ROOT__", call.root_path.encode()).replace(
        b"__REGIONS__", regions)
    return Reply(200, page, content_type=b"text/html; charset=utf-8").header(
        "Cache-Control", "no-cache")


async def asset(_: Any, call: Call) -> Reply:
    """The page's script and style sheet."""
    kind = ASSETS.get(call.path.name)
    if kind is None:
        raise NotFound("Not Found")
    return Reply(200, _file(call.path.name), content_type=kind).header(
        "Cache-Control", "no-cache")


ROUTES = [Route("GET", "/", index), Route("GET", "/static/{name}", asset, path_model=AssetPath)]
