"""The route table: every operation of the HTTP API, its inputs, guard, answers and handler.

The lean ASGI router (``serve/asgi.py``) serves it and ``serve/openapi.py`` describes it.
"""

from __future__ import annotations

from pydantic import BaseModel

from leaderboard.boards import BoardCreate
from leaderboard.models import (
    AroundQuery,
    AroundResponse,
    BatchRequest,
    BatchResponse,
    BoardAroundQuery,
    BoardList,
    BoardPath,
    BoardRanksQuery,
    BoardRegionQuery,
    BoardResponse,
    BoardScore,
    BoardTopQuery,
    BoardUserPath,
    EraseRequest,
    HealthResponse,
    LoginRequest,
    RankEntry,
    RanksQuery,
    RanksResponse,
    RegionQuery,
    RegisterRequest,
    RegisterResponse,
    RenameRequest,
    ScoreAdd,
    ScoreCreate,
    ScoreUpdate,
    SeasonList,
    SeasonsQuery,
    TokenResponse,
    TopQuery,
    TopResponse,
    UserPath,
    WritersResponse,
)
from leaderboard.serve.asgi import Handler, Route
from leaderboard.serve.handlers import (
    admin,
    auth,
    boards,
    health,
    live,
    page,
    reads,
    scores,
    users,
)
from leaderboard.serve.openapi import doc_routes


def player_write(path: str, handler: Handler, body: type[BaseModel], *,
                 status: int = 200, optional: bool = False) -> Route:
    """A write of the caller's own score: any valid token, Idempotency-Key, an entry back."""
    return Route("POST", path, handler, status=status, body=body, body_optional=optional,
                 response=RankEntry, token="any", idempotency=True,
                 errors=(409, 429, 503) if status == 201 else (429, 503), tag="scores")


API: list[Route] = [
    Route("POST", "/auth/register", auth.register, status=201, body=RegisterRequest,
          response=RegisterResponse, errors=(409, 429, 503), tag="auth"),
    Route("POST", "/auth/login", auth.login, body=LoginRequest, response=TokenResponse,
          errors=(401, 429, 503), tag="auth"),
    Route("PATCH", "/users/me", users.rename, body=RenameRequest, response=RegisterResponse,
          token="any", errors=(403, 404, 503), tag="auth"),
    Route("DELETE", "/users/me", users.erase, status=204, body=EraseRequest, token="any",
          errors=(401, 403, 503), tag="auth"),
    player_write("/score/create", scores.create, ScoreCreate, status=201, optional=True),
    player_write("/score/update", scores.update, ScoreUpdate),
    player_write("/score/add", scores.add, ScoreAdd),
    Route("POST", "/scores/batch", scores.batch, body=BatchRequest, response=BatchResponse,
          token="server", errors=(503,), tag="scores"),
    Route("GET", "/top", reads.top, query=TopQuery, response=TopResponse, errors=(503,),
          tag="reads"),
    Route("GET", "/rank/{user_id}", reads.rank, query=RegionQuery, path_model=UserPath,
          response=RankEntry, errors=(404, 503), tag="reads"),
    Route("GET", "/around/{user_id}", reads.around, query=AroundQuery, path_model=UserPath,
          response=AroundResponse, errors=(404, 503), tag="reads"),
    Route("GET", "/ranks", reads.ranks, query=RanksQuery, response=RanksResponse,
          errors=(503,), tag="reads"),
    Route("POST", "/boards", boards.create, status=201, body=BoardCreate,
          response=BoardResponse, token="admin", errors=(409, 503), tag="boards"),
    Route("GET", "/boards", boards.listing, response=BoardList, tag="boards"),
    Route("GET", "/boards/{board}", boards.show, path_model=BoardPath,
          response=BoardResponse, errors=(404, 503), tag="boards"),
    Route("POST", "/boards/{board}/scores", scores.board_score, body=BoardScore,
          path_model=BoardPath, response=RankEntry, token="any", idempotency=True,
          errors=(404, 429, 503), tag="boards"),
    Route("GET", "/boards/{board}/top", reads.top, query=BoardTopQuery,
          path_model=BoardPath, response=TopResponse, errors=(404, 503), tag="boards"),
    Route("GET", "/boards/{board}/rank/{user_id}", reads.rank, query=BoardRegionQuery,
          path_model=BoardUserPath, response=RankEntry, errors=(404, 503), tag="boards"),
    Route("GET", "/boards/{board}/around/{user_id}", reads.around,
          query=BoardAroundQuery, path_model=BoardUserPath, response=AroundResponse,
          errors=(404, 503), tag="boards"),
    Route("GET", "/boards/{board}/live", live.live, query=live.LiveQuery, path_model=BoardPath,
          errors=(404, 503), tag="boards", stream=True),
    Route("GET", "/boards/{board}/ranks", reads.ranks, query=BoardRanksQuery,
          path_model=BoardPath, response=RanksResponse, errors=(404, 503), tag="boards"),
    Route("GET", "/boards/{board}/seasons", boards.seasons, query=SeasonsQuery,
          path_model=BoardPath, response=SeasonList, errors=(404, 503), tag="boards"),
    Route("DELETE", "/boards/{board}", boards.delete, status=204, path_model=BoardPath,
          token="admin", errors=(404, 409, 503), tag="boards"),
    Route("POST", "/admin/writers/pause", admin.pause_writers, token="admin",
          response=WritersResponse, errors=(503,), tag="admin"),
    Route("POST", "/admin/writers/resume", admin.resume_writers, token="admin",
          response=WritersResponse, errors=(503,), tag="admin"),
    Route("GET", "/admin/writers", admin.writers, token="admin", response=WritersResponse,
          errors=(503,), tag="admin"),
    Route("GET", "/health", health.health, response=HealthResponse,
          responses={503: HealthResponse}, tag="operations"),
]

ROUTES: list[Route] = [*API, *doc_routes(API), *page.ROUTES]
