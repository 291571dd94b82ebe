"""A plain Python model of boards with seasons, for tests to compare the service against.

It applies writes at given instants (µs, the shard's Redis clock) with ``apply_operator``,
files each in the season ``Board.schedule`` gives for that instant, and ranks a season the way
the ZSETs do (docs/boards.md): sort key descending (score on ``desc`` boards, -score on
``asc``), then the version at which the score was reached (earlier first), then user id bytes
descending (only equal ``reached`` across Redis instances get that far).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from leaderboard.boards import Applied, Board, Kind, apply_operator

GLOBAL = "GLOBAL"


@dataclass(frozen=True)
class Entry:
    """One user's state in one season."""

    user_id: str
    name: str
    region: str
    score: int
    version: int
    reached: int


@dataclass(frozen=True)
class Outcome:
    """What a write did: its season, the operator's verdict, and the entry afterwards."""

    season: int
    applied: Applied
    entry: Entry


@dataclass
class BoardModel:
    """Every season of one board, as the writes applied so far leave it."""

    board: Board
    seasons: dict[int, dict[str, Entry]] = field(default_factory=dict)

    def write(self, t_us: int, user_id: str, name: str, region: str, kind: Kind,
              value: int) -> Outcome:
        """Apply a write at instant ``t_us`` (also its version); ValueError as the operator."""
        season = self.board.schedule.season_at(t_us)
        if season is None:
            raise ValueError("season_not_started")
        entries = self.seasons.setdefault(season, {})
        cur = entries.get(user_id)
        applied = apply_operator(self.board, None if cur is None else cur.score, kind, value)
        if not applied.stored:
            assert cur is not None
            return Outcome(season, applied, cur)
        reached = t_us if applied.reached or cur is None else cur.reached
        entry = Entry(user_id, name, region, applied.score, t_us, reached)
        if cur is not None:
            entry = replace(entry, region=cur.region)  # the region is fixed at registration
        entries[user_id] = entry
        return Outcome(season, applied, entry)

    def standings(self, season: int, region: str = GLOBAL) -> list[Entry]:
        """A season's board (GLOBAL: everyone; a region: its users), best first."""
        rows = [e for e in self.seasons.get(season, {}).values()
                if region == GLOBAL or e.region == region]
        rows.sort(key=lambda e: e.user_id.encode(), reverse=True)
        desc = self.board.order == "desc"  # spelled out here, not Board.sort_key: the model
        rows.sort(key=lambda e: (-e.score if desc else e.score, e.reached))  # must not share it
        return rows

    def rank(self, season: int, user_id: str, region: str = GLOBAL) -> int | None:
        """1-based rank of a user in a season's board, None when not on it."""
        for i, e in enumerate(self.standings(season, region), start=1):
            if e.user_id == user_id:
                return i
        return None
