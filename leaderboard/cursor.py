"""Page cursors: a position in a board's order, not an offset, so paging holds under writes.

A cursor names the last entry of a page by its place in the ZSET order, ``(sort key, member)``
(the member is 16 digits of ``MAX_VERSION - reached`` followed by the user id). The next page
starts right after that position, wherever that entry moved since, so an entry that did not
change while a client paged through appears exactly once. The cursor also names the board,
season and region it belongs to: one from another view is refused (422 ``cursor_invalid``).
It is opaque to clients (URL-safe base64), needs no server state, and so survives restarts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from leaderboard.errors import BadRequest
from leaderboard.keys import MAX_VERSION, MEMBER_PREFIX_LEN

VERSION = "c1"
SEP = "\x1f"  # cannot appear in board ids, regions, numbers or user ids
_MEMBER = re.compile(r"^[0-9]{16}[A-Za-z0-9_.-]{1,64}$")
MAX_SORT_KEY = 2**53 - 1


class CursorInvalid(BadRequest):
    code = "cursor_invalid"


@dataclass(frozen=True)
class Cursor:
    board: str  # '' on the seed's paths
    season: int  # 1 on the seed's paths
    region: str
    sort_key: int
    member: str

    def encode(self) -> str:
        text = SEP.join([VERSION, self.board, str(self.season), self.region,
                         str(self.sort_key), self.member])
        return base64.urlsafe_b64encode(f"{text}{SEP}{_check(text)}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor in ``token``; ``CursorInvalid`` if it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise CursorInvalid("cursor: not a cursor this service issued") from None
        text, _, check = raw.rpartition(SEP)
        parts = text.split(SEP)
        if len(parts) != 6 or parts[0] != VERSION or check != _check(text):
            raise CursorInvalid("cursor: not a cursor this service issued (or cut short)")
        _, board, season, region, sort_key, member = parts
        if not (season.isdigit() and sort_key.lstrip("-").isdigit() and _MEMBER.match(member)):
            raise CursorInvalid("cursor: malformed")
        if abs(int(sort_key)) > MAX_SORT_KEY or int(season) < 1:
            raise CursorInvalid("cursor: malformed")
        return cls(board, int(season), region, int(sort_key), member)

    def check(self, board: str, region: str, season: int | None) -> None:
        """Refuse a cursor from another board, region or season than the request's."""
        if self.board != board or self.region != region or (
                season is not None and season != self.season):
            raise CursorInvalid("cursor: it belongs to another board, region or season")

    @property
    def reached(self) -> int:
        return MAX_VERSION - int(self.member[:MEMBER_PREFIX_LEN])

    @property
    def user_id(self) -> str:
        return self.member[MEMBER_PREFIX_LEN:]


def _check(text: str) -> str:
    """A short digest: a cursor cut short or edited is refused rather than read elsewhere."""
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def sort_key_of(redis_score: str | bytes) -> int:
    """A ZSET score as Redis prints it (``1e+15`` for 10^15): exact below 2^53."""
    return int(float(redis_score))
