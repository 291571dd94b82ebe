"""Errors the service answers with; one handler maps them to JSON.

LeaderboardError          base: status_code + code
├── BadRequest            422 invalid input the models could not catch (e.g. region mismatch)
├── ScoreOutOfRange       422 a write would leave |score| > 2^53 - 1
├── Unauthorized          401 missing, invalid or expired token; wrong credentials
├── NotFound              404 user not on the board
├── Conflict              409 user or entry already exists
└── Unavailable           503 Redis, Postgres or a shard actor cannot be reached
"""

from __future__ import annotations


class LeaderboardError(Exception):
    """Base of every error the HTTP layer turns into {"error", "detail"}."""

    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(LeaderboardError):
    status_code = 422
    code = "validation_error"


class ScoreOutOfRange(LeaderboardError):
    status_code = 422
    code = "score_out_of_range"


class Unauthorized(LeaderboardError):
    status_code = 401
    code = "unauthorized"


class NotFound(LeaderboardError):
    status_code = 404
    code = "not_found"


class Conflict(LeaderboardError):
    status_code = 409
    code = "conflict"


class Unavailable(LeaderboardError):
    status_code = 503
    code = "unavailable"
