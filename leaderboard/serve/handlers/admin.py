"""Operator endpoints (admin token): the write-behind writers."""

from __future__ import annotations

import asyncio

from leaderboard.serve.asgi import Call, Reply
from leaderboard.serve.context import Context


async def pause_writers(ctx: Context, _: Call) -> Reply:
    """Stop moving events into Postgres; writes queue up to the backlog limit."""
    await asyncio.gather(*(w.pause.remote() for w in ctx.writers))
    return Reply.json({"writers": await ctx.writer_stats()})


async def resume_writers(ctx: Context, _: Call) -> Reply:
    """Resume the writers."""
    await asyncio.gather(*(w.resume.remote() for w in ctx.writers))
    return Reply.json({"writers": await ctx.writer_stats()})


async def writers(ctx: Context, _: Call) -> Reply:
    """Each writer's state and counters."""
    return Reply.json({"writers": await ctx.writer_stats()})
