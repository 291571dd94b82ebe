"""Wire models: HTTP bodies and answers, token claims, queue events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    model_validator,
)

from leaderboard.metadata import check_metadata
from leaderboard.settings import GLOBAL, MAX_SCORE

Score = Annotated[StrictInt, Field(ge=-MAX_SCORE, le=MAX_SCORE)]
UserId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
# no control characters: Postgres text cannot hold NUL, and names are shown to players
Name = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Region = Annotated[StrictStr, Field(min_length=1, max_length=50)]
Password = Annotated[StrictStr, Field(min_length=8, max_length=1024)]
# an entry's metadata: a JSON object of at most 512 bytes once encoded compactly (422
# metadata_invalid otherwise); stored with the entry, answered in every entry
Metadata = Annotated[
    dict[str, Any],
    AfterValidator(check_metadata),
    Field(description="a JSON object, at most 512 bytes encoded compactly (UTF-8)"),
]


class RegisterRequest(BaseModel):
    user_id: UserId
    name: Name
    region: Region
    password: Password
    initialScore: Score | None = None  # noqa: N815 - UpRank's wire name


class RenameRequest(BaseModel):
    name: Name


class EraseRequest(BaseModel):
    password: Annotated[StrictStr, Field(min_length=1, max_length=1024)]


class LoginRequest(BaseModel):
    user_id: UserId
    password: Annotated[StrictStr, Field(min_length=1, max_length=1024)]


class ScoreCreate(BaseModel):
    region: Region | None = None
    initialScore: Score = 0  # noqa: N815 - UpRank's wire name
    metadata: Metadata | None = None


class ScoreUpdate(BaseModel):
    score: Score
    metadata: Metadata | None = None  # replaces the entry's; absent: the entry's becomes {}


class ScoreAdd(BaseModel):
    delta: Score
    metadata: Metadata | None = None


IdemKey = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _exactly_one(*fields: str) -> dict[str, Any]:
    """JSON Schema for "exactly one of these fields is an integer" (the others absent or null)."""
    return {"oneOf": [{"required": [f], "properties": {f: {"type": "integer"}}} for f in fields]}


class BatchItem(BaseModel):
    """One write of a game server's batch: exactly one of ``score`` (set) or ``delta`` (add),
    to ``board`` (``default`` unless named; its operator decides which of the two it takes)."""

    model_config = ConfigDict(json_schema_extra=_exactly_one("score", "delta"))

    user_id: UserId
    score: Score | None = None
    delta: Score | None = None
    idempotency_key: IdemKey | None = None
    board: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = "default"
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _one_of(self) -> BatchItem:
        if (self.score is None) == (self.delta is None):
            raise ValueError("give exactly one of score or delta")
        return self


class BoardScore(BaseModel):
    """A write to a board: ``score`` (set and best boards) or ``delta`` (set and incr boards)."""

    model_config = ConfigDict(json_schema_extra=_exactly_one("score", "delta"))

    score: Score | None = None
    delta: Score | None = None
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _one_of(self) -> BoardScore:
        if (self.score is None) == (self.delta is None):
            raise ValueError("give exactly one of score or delta")
        return self


class BatchRequest(BaseModel):
    items: Annotated[list[BatchItem], Field(min_length=1, max_length=1000)]


class UserPublic(BaseModel):
    user_id: str
    name: str
    region: str


class TokenResponse(BaseModel):
    token: str


class RegisterResponse(BaseModel):
    token: str
    user: UserPublic


class RankEntry(BaseModel):
    """An entry; ``rank`` is null while the board is rebuilt (``warming``) or GLOBAL's instance
    is unreachable (``global_pending``: applied, folded into GLOBAL later). On boards other than
    ``default``, writes also answer their ``season``, the entry's ``version`` (µs on its Redis
    instance's clock: the order of writes, the tie-break) and, on ``best`` boards, ``improved``."""

    rank: int | None
    user_id: str
    name: str
    region: str
    score: int
    warming: bool | None = None
    global_pending: bool | None = None
    season: int | None = None
    version: int | None = None
    improved: bool | None = None
    total: int | None = None  # rank reads: entries on the board (of the region)
    percentile: float | None = None  # rank reads: share ranked strictly below, 0-100
    gap_to_next: int | None = None  # rank reads: score change to pass the entry above
    metadata: dict[str, Any] | None = None  # the entry's metadata ({} when none)


class RanksResponse(BaseModel):
    """Friends' ranks: the listed users on the board in rank order, and the ids not on it."""

    region: str
    entries: list[RankEntry]
    missing: list[str]
    season: int | None = None


class TopResponse(BaseModel):
    region: str
    entries: list[RankEntry]
    total: int
    next: str | None = None  # the cursor of the next page; null on the last page
    warming: bool | None = None
    season: int | None = None  # on /boards/{board}/... paths


class AroundResponse(BaseModel):
    region: str
    self: RankEntry
    around: list[RankEntry]
    total: int | None = None
    warming: bool | None = None
    season: int | None = None


class ErrorBody(BaseModel):
    """Every error answer: a stable code, a human-readable detail."""

    error: str
    detail: str
    scope: str | None = None  # rate_limited: user, region or auth


class BatchResponse(BaseModel):
    """One answer per item, in order: ``applied`` with its entry, or ``refused`` with the
    error code, detail (and ``retry_after`` seconds) a single write would have answered."""

    results: list[dict[str, Any]]


class WritersResponse(BaseModel):
    writers: list[dict[str, Any]]


class HealthResponse(BaseModel):
    """Each component's state; the same shape with status 503 when degraded."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "degraded"]
    redis: str
    postgres: str
    warming: bool
    backlog: dict[str, int]
    dead_letters: dict[str, int]
    # ended seasons held back from their archive by a dead-lettered write (only when any)
    archive_blocked: list[dict[str, Any]] | None = None


class SeasonInfo(BaseModel):
    number: int
    started_at: str
    ends_at: str | None


class BoardResponse(BaseModel):
    """A board's definition (as created), its current season and its GLOBAL entry count."""

    id: str
    title: str
    order: Literal["desc", "asc"]
    operator: Literal["set", "best", "incr"]
    reset: int | str | None
    start: str
    season: SeasonInfo | None = None  # null before the first season starts
    entries: int | None = None


class BoardList(BaseModel):
    boards: list[BoardResponse]


class SeasonSummary(BaseModel):
    """One season of a board: ``ended_at`` null for the live one; ``entries`` on GLOBAL."""

    number: int
    started_at: str
    ended_at: str | None
    entries: int


class SeasonList(BaseModel):
    seasons: list[SeasonSummary]  # newest first


# -- path and query parameters ----------------------------------------------------------------

RegionParam = Annotated[str, Field(min_length=1, max_length=50)]


class BoardPath(BaseModel):
    board: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class UserPath(BaseModel):
    user_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class RegionQuery(BaseModel):
    region: RegionParam = GLOBAL


class TopQuery(RegionQuery):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: Annotated[str | None, Field(min_length=1, max_length=400)] = None  # a page's "next"
    from_rank: Annotated[int | None, Field(ge=1, le=10_000_000)] = None  # or: start at a rank


UserIdList = Annotated[str, Field(min_length=1, max_length=100 * 65,
                                  pattern=r"^[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64}){0,99}$")]


class RanksQuery(RegionQuery):
    user_ids: UserIdList  # 1-100 ids, comma-separated (duplicates count once)

    def ids(self) -> list[str]:
        return list(dict.fromkeys(self.user_ids.split(",")))


class AroundQuery(RegionQuery):
    span: Annotated[int, Field(ge=1, le=100, alias="range")] = 10


SeasonParam = Annotated[int | None, Field(ge=1, le=2**62)]


class BoardRegionQuery(RegionQuery):
    season: SeasonParam = None  # absent: the live season


class BoardTopQuery(TopQuery):
    season: SeasonParam = None


class BoardRanksQuery(RanksQuery):
    season: SeasonParam = None


class BoardAroundQuery(AroundQuery):
    season: SeasonParam = None


class SeasonsQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    before: SeasonParam = None  # only seasons numbered below this (the next page)


class BoardUserPath(BoardPath):
    user_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Claims(BaseModel):
    """A verified token's claims."""

    model_config = ConfigDict(extra="ignore")

    sub: UserId
    name: Name
    region: Region
    iat: int
    exp: int
    iss: str
    aud: str
    role: Literal["player", "server", "admin"] = "player"


class ScoreEvent(BaseModel):
    """One write event on a shard stream, as the writers read it (no board: default, season 1)."""

    user_id: UserId
    name: Name
    region: Region
    score: Annotated[int, Field(ge=-MAX_SCORE, le=MAX_SCORE)]
    version: Annotated[int, Field(ge=1)]
    reached: Annotated[int, Field(ge=1)]
    ts: Annotated[int, Field(ge=0)]
    board: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = "default"
    season: Annotated[int, Field(ge=1)] = 1
    metadata: str = ""  # compact JSON (leaderboard/metadata.py); '' = none
