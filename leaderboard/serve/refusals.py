"""One table for what a write script's refusal means, shared by single writes and the batch
endpoint: the same error code, status, detail, Retry-After and entry flags on both paths."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from leaderboard import metadata
from leaderboard.actors.shard_types import WriteCommand, WriteResult
from leaderboard.errors import (
    BoardChanged,
    Conflict,
    KeyReused,
    LeaderboardError,
    NotFound,
    OperatorMismatch,
    QueueFull,
    RateLimited,
    ScoreOutOfRange,
    SeasonNotStarted,
    Unauthorized,
    Unavailable,
    Warming,
)


def _rate_limited(result: WriteResult) -> LeaderboardError:
    return RateLimited(result.scope, math.ceil(result.retry_after_us / 1e6))


REFUSALS: dict[str, Callable[[WriteResult], LeaderboardError]] = {
    "exists": lambda _: Conflict("this user already has a leaderboard entry"),
    "out_of_range": lambda _: ScoreOutOfRange(
        "the resulting score would be outside +-(2^53 - 1)"),
    "unavailable": lambda _: Unavailable("Redis or the shard is unreachable; retry shortly"),
    "rate_limited": _rate_limited,
    "warming": lambda _: Warming("the board is being rebuilt from Postgres; retry in a second"),
    "key_reused": lambda _: KeyReused(
        "this idempotency key was used for a different request"),
    "queue_full": lambda _: QueueFull(
        "the shard has too many events waiting for Postgres; retry shortly", 1),
    "operator_mismatch": lambda _: OperatorMismatch(
        "this board's operator takes the other kind: score on best boards, delta on incr boards"),
    "unknown_board": lambda _: NotFound("no such board"),
    "board_changed": lambda _: BoardChanged(
        "the board was deleted or created again just now; retry shortly"),
    "erased": lambda _: Unauthorized("this account was deleted"),
    "season_not_started": lambda r: SeasonNotStarted(
        "the board's first season has not started yet", math.ceil(r.retry_after_us / 1e6)),
}
APPLIED = ("ok", "replay")


def refusal(result: WriteResult) -> LeaderboardError | None:
    """The error a refused write answers with; None when the write was applied."""
    if result.status in APPLIED:
        return None
    make = REFUSALS.get(result.status)
    if make is None:
        raise RuntimeError(f"the write script answered an unknown status {result.status!r}")
    return make(result)


def entry(cmd: WriteCommand, result: WriteResult) -> dict[str, Any]:
    """The entry an applied write answers with; flags say why a rank is missing."""
    body: dict[str, Any] = {"rank": result.rank, "user_id": cmd.user_id,
                            "name": result.name or cmd.name,
                            "region": cmd.region, "score": result.score,
                            "metadata": metadata.decode(result.metadata)}
    if result.global_pending:  # GLOBAL's Redis unreachable: applied, folded in later
        body.update(rank=None, global_pending=True)
    elif result.rank == 0:  # the board is being rebuilt: no rank rather than a wrong one
        body.update(rank=None, warming=True)
    if cmd.board != "default":  # default's answers stay exactly what they were
        body["season"] = result.season  # ("improved" on best boards: the handler knows them)
        body["version"] = result.version  # the entry's version: µs on its instance's clock
    return body


def refused_item(user_id: str, error: LeaderboardError) -> dict[str, Any]:
    """A batch item that was not applied: the single-write error body, plus when to retry."""
    item: dict[str, Any] = {"user_id": user_id, "status": "refused", **error.body()}
    if error.retry_after_s is not None:
        item["retry_after"] = error.retry_after_s
    return item


def batch_item(cmd: WriteCommand, result: WriteResult) -> dict[str, Any]:
    """One item's answer in a batch: the entry when applied, or the refusal."""
    error = refusal(result)
    if error is not None:
        return refused_item(cmd.user_id, error)
    item: dict[str, Any] = {"user_id": cmd.user_id, "status": "applied",
                            "entry": entry(cmd, result)}
    if result.status == "replay":
        item["replayed"] = True
    return item
