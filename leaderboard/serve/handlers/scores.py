"""Score writes: the caller's own (player token) and a game server's batch (server token)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import TypeAdapter, ValidationError

from leaderboard import metadata
from leaderboard.actors.router import shard_for
from leaderboard.actors.shard_types import WriteCommand, WriteMode, WriteResult
from leaderboard.boards import DEFAULT, Board, Kind
from leaderboard.errors import BadRequest, LeaderboardError, NotFound, OperatorMismatch
from leaderboard.models import (
    BatchItem,
    BatchRequest,
    BoardPath,
    BoardScore,
    IdemKey,
    ScoreAdd,
    ScoreCreate,
    ScoreUpdate,
)
from leaderboard.serve.asgi import Call, Reply
from leaderboard.serve.context import Context
from leaderboard.serve.refusals import batch_item, entry, refused_item

_IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(IdemKey)


def idempotency_key(call: Call) -> str | None:
    """The request's ``Idempotency-Key`` header, checked like any other input."""
    raw = call.headers.get("idempotency-key")
    if raw is None:
        return None
    try:
        return _IDEMPOTENCY_KEY.validate_python(raw)
    except ValidationError:
        raise BadRequest("header.Idempotency-Key: 1-128 of [A-Za-z0-9_.:-]") from None


async def _write(ctx: Context, call: Call, mode: WriteMode, value: int, status: int,
                 board: Board = DEFAULT) -> Reply:
    """One write on the caller's shard: the entry, with the caller's rate-limit headers."""
    meta = metadata.encode(getattr(call.body, "metadata", None))
    cmd, result = await ctx.write(call.claims, mode, value, idempotency_key(call), board.id, meta)
    body = entry(cmd, result)
    if board.operator == "best":
        body["improved"] = result.improved
    reply = Reply.json(body, status)
    if result.status == "replay":
        reply.header("Idempotent-Replayed", "true")
    if result.remaining >= 0:
        reply.header("X-RateLimit-Limit", str(ctx.limits.user.capacity))
        reply.header("X-RateLimit-Remaining", str(result.remaining))
    return reply


async def create(ctx: Context, call: Call) -> Reply:
    """Create the caller's entry (an empty body means score 0); 409 if it exists."""
    body: ScoreCreate = call.body or ScoreCreate()
    if body.region is not None and ctx.region(body.region) != call.claims.region:
        raise BadRequest(f"region must be the account's region {call.claims.region!r}")
    return await _write(ctx, call, "create", body.initialScore, 201)


async def update(ctx: Context, call: Call) -> Reply:
    """Set the caller's score (creating the entry if needed)."""
    body: ScoreUpdate = call.body
    return await _write(ctx, call, "set", body.score, 200)


async def add(ctx: Context, call: Call) -> Reply:
    """Add ``delta`` to the caller's score (from 0 if no entry yet)."""
    body: ScoreAdd = call.body
    return await _write(ctx, call, "add", body.delta, 200)


def _kind(item: BatchItem | BoardScore) -> tuple[Kind, int]:
    if item.score is not None:
        return "score", item.score
    return "delta", int(item.delta or 0)


def _check(board: Board | None, kind: Kind) -> LeaderboardError | None:
    """Why a write of ``kind`` cannot go to ``board`` (None: it can)."""
    if board is None:
        return NotFound("no such board")
    if not board.accepts(kind):
        return OperatorMismatch(f"a {board.operator} board takes "
                                + ("scores, not deltas" if kind == "delta" else
                                   "deltas, not scores"))
    return None


async def board_score(ctx: Context, call: Call) -> Reply:
    """Submit to a board: ``score`` or ``delta`` as its operator takes; the entry + ``season``
    (and ``improved`` on best boards)."""
    path: BoardPath = call.path
    board = await ctx.boards.lookup(path.board)
    kind, value = _kind(call.body)
    error = _check(board, kind)
    if error is not None:
        raise error
    assert board is not None
    return await _write(ctx, call, "set" if kind == "score" else "add", value, 200, board)


async def batch(ctx: Context, call: Call) -> Reply:
    """Up to 1,000 writes from a trusted game server (token role ``server``), one call per
    shard; one answer per item, in order. Per-user and per-region limits still apply."""
    body: BatchRequest = call.body
    profiles = await ctx.profiles({item.user_id for item in body.items})
    boards = {b: await ctx.boards.lookup(b) for b in {item.board for item in body.items}}
    answers: list[dict[str, Any] | None] = [None] * len(body.items)
    by_shard: dict[str, list[tuple[int, WriteCommand]]] = {}
    for i, item in enumerate(body.items):
        profile = profiles.get(item.user_id)
        if profile is None or profile[1] not in ctx.regions:
            answers[i] = {"user_id": item.user_id, "status": "refused",
                          "error": "unknown_user", "detail": "no such user"}
            continue
        kind, value = _kind(item)
        error = _check(boards[item.board], kind)
        if error is not None:
            answers[i] = refused_item(item.user_id, error)
            continue
        cmd = WriteCommand(item.user_id, profile[0], profile[1],
                           "set" if kind == "score" else "add", value, item.idempotency_key,
                           item.board, metadata.encode(item.metadata))
        by_shard.setdefault(shard_for(ctx.topology, profile[1], item.user_id), []).append((i, cmd))
    groups = list(by_shard.items())
    outcomes = await asyncio.gather(
        *(ctx.write_group(shard, [cmd for _, cmd in items]) for shard, items in groups))
    for (_, items), results in zip(groups, outcomes, strict=True):
        for (i, cmd), result in zip(items, results, strict=True):
            answers[i] = _batch_answer(boards[cmd.board], cmd, result)
    return Reply.json({"results": answers})


def _batch_answer(board: Board | None, cmd: WriteCommand, result: WriteResult) -> dict[str, Any]:
    answer = batch_item(cmd, result)
    if board is not None and board.operator == "best" and "entry" in answer:
        answer["entry"]["improved"] = result.improved
    return answer
