"""Answers built from the read scripts' flat replies (``leaderboard/read_scripts.py``).

Board ``default`` and every board's season reply in the same layouts (a board's script puts
which of its two candidate seasons it read first; the caller strips it), so one parser serves
each kind of read on every path.
"""

from __future__ import annotations

from typing import Any

from leaderboard import metadata
from leaderboard.cursor import Cursor, sort_key_of
from leaderboard.settings import MAX_SCORE

Entry = dict[str, Any]


def entries_from(flat: list[Any], first_rank: int) -> list[Entry]:
    """Entries from the scripts' flat ``uid, name, region, score, metadata`` runs, ranked from
    first_rank."""
    return [
        {
            "rank": first_rank + i // 5,
            "user_id": flat[i],
            "name": flat[i + 1],
            "region": flat[i + 2],
            "score": int(flat[i + 3]),
            "metadata": metadata.decode(flat[i + 4]),
        }
        for i in range(0, len(flat), 5)
    ]


def top_answer(reply: list[Any], region: str, board: str, season: int) -> dict[str, Any]:
    """``{total, first rank0, next sort key, next member, entries...}``: a page, with the
    cursor of the next one (null on the last page)."""
    total, first, sk, member = int(reply[0]), int(reply[1]), reply[2], reply[3]
    cursor = None if not member else Cursor(board, season, region, sort_key_of(sk),
                                            str(member)).encode()
    return {"region": region, "entries": entries_from(reply[4:], first + 1), "total": total,
            "next": cursor}


def percentile(rank: int, total: int) -> float:
    """The share of entries ranked strictly below, in percent, rounded down to two decimals
    (never overstating a standing): rank 1 of 1,000 is 99.9."""
    return (10_000 * (total - rank) // total) / 100


def gap_to_next(my_score: int, above_sort_key: str | None, order: str) -> int | None:
    """The score change that moves a user above the entry just above them. Ties go to whoever
    reached the score first, so equalling it is not enough: one more (or one less, lowest
    first). None at rank 1, or when the score needed is outside the exact range."""
    if not above_sort_key:
        return None
    above = sort_key_of(above_sort_key)
    mine = my_score if order == "desc" else -my_score
    needed = above + 1 - mine  # in sort-key units
    change = needed if order == "desc" else -needed
    return change if abs(my_score + change) <= MAX_SCORE else None


def rank_answer(reply: list[Any], user_id: str, order: str = "desc") -> Entry | None:
    """``{rank0, name, region, score, total, sort key above, metadata}``; None: not on the
    board."""
    if not reply:
        return None
    entry = entries_from([user_id, *reply[1:4], reply[6]], int(reply[0]) + 1)[0]
    total = int(reply[4])
    entry.update(total=total, percentile=percentile(entry["rank"], total),
                 gap_to_next=gap_to_next(entry["score"], reply[5], order))
    return entry


def around_answer(reply: list[Any], region: str) -> dict[str, Any] | None:
    """``{self rank0, first rank0, total, entries...}``; None: not on the board."""
    if not reply:
        return None
    me, first = int(reply[0]) + 1, int(reply[1]) + 1
    ranked = entries_from(reply[3:], first)
    return {"region": region, "self": next(e for e in ranked if e["rank"] == me),
            "around": [e for e in ranked if e["rank"] != me], "total": int(reply[2])}


def ranks_answer(reply: list[Any], region: str, user_ids: list[str]) -> dict[str, Any]:
    """``{uid, rank0, name, region, score, metadata}`` runs of the users found: in rank order,
    and the ids not on the board."""
    found = [{"rank": int(reply[i + 1]) + 1, "user_id": reply[i], "name": reply[i + 2],
              "region": reply[i + 3], "score": int(reply[i + 4]),
              "metadata": metadata.decode(reply[i + 5])}
             for i in range(0, len(reply), 6)]
    found.sort(key=lambda e: e["rank"])
    present = {e["user_id"] for e in found}
    return {"region": region, "entries": found,
            "missing": [u for u in user_ids if u not in present]}
