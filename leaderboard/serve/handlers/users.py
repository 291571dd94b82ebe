"""The caller's own account: ``PATCH /users/me`` renames (one name per user, on every board);
``DELETE /users/me`` erases the user everywhere (``leaderboard/erasure.py``).

A user's name lives once, in their profile (``Keys.profile`` on every Redis instance, and
``credentials`` in Postgres): read scripts show it instead of the name an entry was written
with, and the write script stores it in new entries and events, so a token issued before the
rename cannot bring the old name back. Rows already in Postgres (live seasons and archives) are
renamed at once and again once the streams have drained past the rename (events written just
before it still carried the old name).
"""

from __future__ import annotations

import asyncio
import logging

from leaderboard import board_purge, changes, erasure
from leaderboard.errors import Forbidden, NotFound, Unauthorized, Unavailable
from leaderboard.models import EraseRequest, RegisterResponse, RenameRequest, UserPublic
from leaderboard.redis_client import REDIS_DOWN
from leaderboard.serve import auth
from leaderboard.serve.asgi import Call, Reply
from leaderboard.serve.context import Context

log = logging.getLogger("ray.serve")
RENAME_ROWS = ("UPDATE leaderboard SET name = $2 WHERE user_id = $1 AND name <> $2",
               "UPDATE archive_entries SET name = $2 WHERE user_id = $1 AND name <> $2")


async def rename(ctx: Context, call: Call) -> Reply:
    """Give the caller a new name everywhere; answers the profile and a token carrying it."""
    claims, body = call.claims, call.body
    assert isinstance(body, RenameRequest)
    if claims.role != "player":
        raise Forbidden("only a player's own token can rename a player")
    region = await ctx.pg.fetchval(
        "UPDATE credentials SET name = $2, renamed_at = now() WHERE user_id = $1 RETURNING region",
        claims.sub, body.name)
    if region is None:
        if await ctx.pg.fetchval("SELECT 1 FROM erased_users WHERE user_id = $1", claims.sub):
            raise Unauthorized("this account was deleted")
        raise NotFound("no such user")
    try:
        await asyncio.gather(*(r.hset(ctx.keys.profile(claims.sub), "name", body.name)
                               for r in ctx.instances.values()))
        await ctx.redis.incr(ctx.keys.profiles_rev)  # cached archive answers are stale now
        await changes.announce_flush(ctx.instances.values(), ctx.keys)  # and cached live ones
    except REDIS_DOWN as exc:  # Postgres has it: a retry finishes the rename
        raise Unavailable("Redis is unreachable; send the rename again") from exc
    await _rename_rows(ctx, claims.sub, body.name)  # before the answer: archives show it
    ctx.spawn(_after_drain(ctx, claims.sub, body.name))
    token = auth.issue_token(ctx.settings, claims.sub, body.name, region)
    user = UserPublic(user_id=claims.sub, name=body.name, region=region)
    return Reply.json(RegisterResponse(token=token, user=user).model_dump())


async def _rename_rows(ctx: Context, user_id: str, name: str) -> None:
    for sql in RENAME_ROWS:
        await ctx.pg.execute(sql, user_id, name)


async def _after_drain(ctx: Context, user_id: str, name: str) -> None:
    """Once every event written before the rename is stored, rename its rows again."""
    if await board_purge.wait_drained(ctx.instances, ctx.topology, ctx.keys, timeout_s=600):
        await _rename_rows(ctx, user_id, name)
    else:
        log.warning("rename of %s: streams did not drain; old rows may keep the old name",
                    user_id)


async def erase(ctx: Context, call: Call) -> Reply:
    """Remove the caller from every board and season, live and archived, and the account;
    the password is checked again (401 when wrong). Their tokens are refused from here on."""
    claims, body = call.claims, call.body
    assert isinstance(body, EraseRequest)
    if claims.role != "player":
        raise Forbidden("only a player's own token can erase a player")
    stored = await ctx.pg.fetchval(
        "SELECT password_hash FROM credentials WHERE user_id = $1", claims.sub)
    ok = await asyncio.to_thread(auth.verify_password, body.password,
                                 stored if stored is not None else ctx.dummy_hash)
    if stored is None or not ok:
        raise Unauthorized("wrong password (or the account is already gone)")
    pool, boards = await ctx.pg.pool(), ctx.boards.all()
    try:
        await erasure.mark(pool, ctx.instances.values(), ctx.redis, ctx.keys, claims.sub)
        await erasure.erase(pool, ctx.instances, ctx.topology, ctx.keys, boards, claims.sub)
    except REDIS_DOWN as exc:  # marked in Postgres: a retry (same password) finishes it
        raise Unavailable("Redis is unreachable; send the request again") from exc
    ctx.spawn(erasure.finish(pool, ctx.instances, ctx.topology, ctx.keys, boards, claims.sub))
    return Reply(204, b"")
