"""What a write changed, as the write scripts announce it (on ``Keys.live``, pub/sub).

The write script (``keys.WRITE_SCORE``) publishes one message per applied write, inside the
script, on the instance whose boards it changed; ``FOLD_GLOBAL`` publishes one for GLOBAL per
write it folds in from another instance. So the announcement is atomic with the write: a
subscriber that has read everything published before some moment has heard of every write
applied before it. A message is six space-separated fields:

  board season boards old new user_id

``boards`` names the changed boards of the season, comma-separated (``EU,GLOBAL``: both on
GLOBAL's instance; ``EU``: a region on another instance; ``GLOBAL``: a fold). ``old`` and ``new``
are the user's ZSET scores (the sort key: the score on desc boards, -score on asc ones) before
and after, ``-`` when there was no entry (a new entry: every total changes). Operations that
change boards in other ways (a rename, an erasure, a rebuild from Postgres, a repair) publish
``FLUSH``: everything any cache holds may have changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import redis.asyncio as aioredis

from leaderboard.keys import Keys

FLUSH = "*"
ABSENT = "-"


class Change(NamedTuple):
    """One write: the user's sort key moved from ``old`` to ``new`` (None: no entry)."""

    board: str
    season: int
    boards: tuple[str, ...]  # region names; GLOBAL for the GLOBAL board
    old: int | None
    new: int | None
    user_id: str

    @property
    def resized(self) -> bool:
        """An entry appeared or went: every total, percentile and short page changed."""
        return self.old is None or self.new is None


def parse(data: bytes | str) -> Change | None:
    """A change message; None for ``FLUSH``. A malformed message raises ``ValueError``."""
    text = data.decode() if isinstance(data, bytes) else data
    if text == FLUSH:
        return None
    board, season, boards, old, new, user_id = text.split(" ")
    return Change(board, int(season), tuple(boards.split(",")), _key(old), _key(new), user_id)


def _key(text: str) -> int | None:
    return None if text == ABSENT else int(text)


def message(change: Change) -> str:
    """The message the scripts publish for ``change`` (tests publish their own with it)."""
    old = ABSENT if change.old is None else str(change.old)
    new = ABSENT if change.new is None else str(change.new)
    return " ".join([change.board, str(change.season), ",".join(change.boards), old, new,
                     change.user_id])


async def announce_flush(instances: Iterable[aioredis.Redis], keys: Keys) -> None:
    """Tell every subscriber of these instances that anything may have changed."""
    for redis in instances:
        await redis.publish(keys.live, FLUSH)
