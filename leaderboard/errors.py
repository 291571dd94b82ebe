"""Errors the service answers with; one handler maps them to JSON.

LeaderboardError          base: status_code + code (+ Retry-After when retrying helps)
├── BadRequest            422 invalid input the models could not catch (e.g. region mismatch)
│   └── MetadataInvalid   422 a write's metadata is not a JSON object of at most 512 bytes
├── ScoreOutOfRange       422 a write would leave |score| > 2^53 - 1
├── KeyReused             422 an Idempotency-Key sent again with a different request
├── OperatorMismatch      422 a delta to a best board, a score to an incr board
├── Unauthorized          401 missing, invalid or expired token; wrong credentials
├── Forbidden             403 a valid token without the role an endpoint needs
├── NotFound              404 user not on the board, or no such path
│   └── NoSuchSeason      404 a read of a season that has not started
├── MethodNotAllowed      405 the path exists, not with this method
├── Conflict              409 user or entry already exists
│   └── SeasonNotStarted  409 the board's first season starts later (Retry-After: until then)
├── PayloadTooLarge       413 a request body over the limit
├── TooManyRequests       429 base of the admission refusals; carries Retry-After
│   ├── RateLimited       429 a token bucket is empty (scope user, region or auth)
│   └── QueueFull         429 the shard's backlog reached QUEUE_REJECT_LENGTH
└── Unavailable           503 Redis, Postgres, a shard actor or the ranking replicas cannot be
    │                         reached (Retry-After: 1)
    ├── Warming           503 the board is being rebuilt; this write needs the user's old score
    └── BoardChanged      503 the board was deleted or created again since this process
                              cached it (Retry-After: 1; after the cache refresh: 404)

Anything else raised while answering is a bug: 500 ``internal_error``, logged with its
traceback, never "retry".
"""

from __future__ import annotations


class LeaderboardError(Exception):
    """Base of every error the HTTP layer turns into {"error", "detail"}."""

    status_code = 500
    code = "internal_error"
    retry_after_s: int | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, object]:
        return {"error": self.code, "detail": self.detail}

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(self.retry_after_s)}


class BadRequest(LeaderboardError):
    status_code = 422
    code = "validation_error"


class MetadataInvalid(BadRequest):
    code = "metadata_invalid"


class ScoreOutOfRange(LeaderboardError):
    status_code = 422
    code = "score_out_of_range"


class KeyReused(LeaderboardError):
    status_code = 422
    code = "idempotency_key_reused"


class OperatorMismatch(LeaderboardError):
    status_code = 422
    code = "operator_mismatch"


class Unauthorized(LeaderboardError):
    status_code = 401
    code = "unauthorized"


class NotFound(LeaderboardError):
    status_code = 404
    code = "not_found"


class NoSuchSeason(NotFound):
    code = "season_not_started"


class MethodNotAllowed(LeaderboardError):
    status_code = 405
    code = "method_not_allowed"

    def __init__(self, allowed: list[str]) -> None:
        super().__init__("Method Not Allowed")
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class Forbidden(LeaderboardError):
    status_code = 403
    code = "forbidden"


class Conflict(LeaderboardError):
    status_code = 409
    code = "conflict"


class SeasonNotStarted(Conflict):
    code = "season_not_started"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, retry_after_s)


class PayloadTooLarge(LeaderboardError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(LeaderboardError):
    status_code = 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, retry_after_s)


class RateLimited(TooManyRequests):
    code = "rate_limited"

    def __init__(self, scope: str, retry_after_s: int) -> None:
        super().__init__(f"{scope} rate limit reached; retry in {retry_after_s} s", retry_after_s)
        self.scope = scope

    def body(self) -> dict[str, object]:
        return {**super().body(), "scope": self.scope}


class QueueFull(TooManyRequests):
    code = "queue_full"


class Unavailable(LeaderboardError):
    status_code = 503
    code = "unavailable"
    retry_after_s = 1


class Warming(Unavailable):
    code = "warming"


class BoardChanged(Unavailable):
    code = "board_changed"
