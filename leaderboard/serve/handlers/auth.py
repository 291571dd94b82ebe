"""Sign-up and login."""

from __future__ import annotations

import asyncio

from leaderboard.errors import Conflict, LeaderboardError, Unauthorized, Unavailable
from leaderboard.models import (
    LoginRequest,
    RegisterRequest,
    RegisterResponse,
    TokenResponse,
    UserPublic,
)
from leaderboard.redis_client import REDIS_DOWN
from leaderboard.serve import auth
from leaderboard.serve.asgi import Call, Reply
from leaderboard.serve.context import Context


async def register(ctx: Context, call: Call) -> Reply:
    """Create an account (and, with initialScore, its leaderboard entry)."""
    body: RegisterRequest = call.body
    region = ctx.region(body.region)
    await ctx.admit_auth(call.client)
    erased = await ctx.pg.fetchrow(
        "SELECT purged_at FROM erased_users WHERE user_id = $1", body.user_id)
    if erased is not None and erased["purged_at"] is None:
        raise Conflict(f"user {body.user_id!r} is being erased; try again in a minute")
    digest = await asyncio.to_thread(
        auth.hash_password, body.password, ctx.settings.password_scrypt_n)
    inserted = await ctx.pg.fetchval(
        "INSERT INTO credentials (user_id, name, region, password_hash) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
        body.user_id, body.name, region, digest)
    if inserted is None:
        raise Conflict(f"user {body.user_id!r} already exists")
    if erased is not None:  # an erased id signed up again: a new user, nothing of the old
        await _unerase(ctx, body.user_id)
    token = auth.issue_token(ctx.settings, body.user_id, body.name, region)
    if body.initialScore is not None:
        try:
            await ctx.write(auth.decode_token(ctx.settings, token), "set", body.initialScore)
        except LeaderboardError:
            await ctx.pg.execute("DELETE FROM credentials WHERE user_id = $1", body.user_id)
            raise
    user = UserPublic(user_id=body.user_id, name=body.name, region=region)
    return Reply.json(RegisterResponse(token=token, user=user).model_dump(), 201)


async def _unerase(ctx: Context, user_id: str) -> None:
    try:
        await asyncio.gather(*(r.delete(ctx.keys.profile(user_id))
                               for r in ctx.instances.values()))
    except REDIS_DOWN as exc:
        await ctx.pg.execute("DELETE FROM credentials WHERE user_id = $1", user_id)
        raise Unavailable("Redis is unreachable; sign up again in a moment") from exc
    await ctx.pg.execute("DELETE FROM erased_users WHERE user_id = $1", user_id)


async def login(ctx: Context, call: Call) -> Reply:
    """Exchange credentials for a token; the same 401 for unknown users and wrong passwords."""
    body: LoginRequest = call.body
    await ctx.admit_auth(call.client)
    row = await ctx.pg.fetchrow(
        "SELECT name, region, password_hash FROM credentials WHERE user_id = $1", body.user_id)
    stored = row["password_hash"] if row else ctx.dummy_hash
    ok = await asyncio.to_thread(auth.verify_password, body.password, stored)
    if row is None or not ok:
        raise Unauthorized("wrong user_id or password")
    token = auth.issue_token(ctx.settings, body.user_id, row["name"], row["region"])
    return Reply.json(TokenResponse(token=token).model_dump())
