"""Redis key templates: the names every script and client reads and writes.

The Lua lives beside it: ``write_scripts`` (WRITE_SCORE, TAKE_TOKENS), ``read_scripts`` and
``apply_scripts``; the write scripts and the apply scripts stay importable from here.

Layout under the deployment's namespace B (setting ``BOARD``), as board ``default`` uses it;
every other board's season keys live under ``lb:B:b:BOARD:GENERATION:SEASON:`` with the same
names (``board_prefix``, ``season``; docs/boards.md), profiles under ``lb:B:profile:USER``:
  lb:B:board:REGION   ZSET, member = 16-digit (MAX - reached) + user_id, score = score
  lb:B:user:USER      HASH name region score version reached member updated_at [meta]
  lb:B:stream:SHARD   STREAM of write events (one field e = 'score version reached ts region
                      user_id name', m = metadata when any), consumed by the writer pool
  lb:B:dead:SHARD     STREAM of events the writers could not store
  lb:B:clock          last version handed out (strictly increasing per instance)
  lb:B:bucket:user:U / bucket:region:R / bucket:auth:ADDR   token buckets {t, ts}
  lb:B:idem:U:KEY     the first answer to a write sent with Idempotency-Key KEY
  lb:B:epoch          marker set once the board is complete; gone = Redis lost its data
  lb:B:warming        set while the board is rebuilt from Postgres (reads go to Postgres)
  lb:B:fold           on GLOBAL's instance: lag histogram of writes folded in from other instances
  lb:B:boards         HASH board id -> generation (the registry write scripts check)
  lb:B:boards:rev     INCR on every board create/delete (+ PUBLISH on the same name)

Many boards (docs/boards.md, "Redis keys"): the namespace B above (the BOARD setting) holds any
number of boards. Board b of generation g keeps season k's ZSETs and hashes under
``lb:B:b:{b}:{g}:{k}:`` (``Keys.season``): its ``board:REGION`` and ``user:USER``. Per board:
``lb:B:b:{b}:{g}:idem:U:KEY``, ``...:seasons`` (SET of the seasons with keys on the instance) and
``...:freed``. Board ``default`` has one season, 1, whose keys are exactly the names above.

With several Redis instances (REDIS_SHARDS) each instance holds the keys of its own regions
(and its own clock, epoch and warming marker); GLOBAL's instance also holds, for users of the
other instances, a copy of their hash (written by FOLD_GLOBAL) so GLOBAL reads find them.

Ties: equal scores are ordered by member bytes, and ZREVRANGE walks members in
descending byte order; the prefix (MAX - reached) is therefore larger for whoever
reached the score earlier, so the first to reach a score ranks higher. Scores stay
exact because |score| <= 2^53 - 1, the range where doubles hold every integer.
"""

from __future__ import annotations

from dataclasses import dataclass

# the scripts that apply stored events moved to apply_scripts; still importable from here
from leaderboard.apply_scripts import ACK_DELETE as ACK_DELETE
from leaderboard.apply_scripts import FOLD_GLOBAL as FOLD_GLOBAL
from leaderboard.apply_scripts import FOLD_LAG_BUCKETS_US as FOLD_LAG_BUCKETS_US
from leaderboard.apply_scripts import RESTORE as RESTORE

# the write and token scripts moved to write_scripts; still importable from here
from leaderboard.write_scripts import TAKE_TOKENS as TAKE_TOKENS
from leaderboard.write_scripts import WRITE_SCORE as WRITE_SCORE

MEMBER_PREFIX_LEN = 16
MAX_VERSION = 2**53 - 1
WRITERS_GROUP = "writers"


DEFAULT_BOARD = "default"


@dataclass(frozen=True)
class SeasonKeys:
    """Key names of one board's season: its region/GLOBAL ZSETs and user hashes."""

    prefix: str

    def board(self, region: str) -> str:
        return f"{self.prefix}board:{region}"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"


@dataclass(frozen=True)
class Keys:
    """Key names of one namespace (the BOARD setting) and of the boards inside it."""

    board_name: str = "default"

    @property
    def prefix(self) -> str:
        return f"lb:{self.board_name}:"

    def board(self, region: str) -> str:
        return f"{self.prefix}board:{region}"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def stream(self, shard: str) -> str:
        return f"{self.prefix}stream:{shard}"

    def dead(self, shard: str) -> str:
        return f"{self.prefix}dead:{shard}"

    def user_bucket(self, user_id: str) -> str:
        return f"{self.prefix}bucket:user:{user_id}"

    def region_bucket(self, region: str) -> str:
        return f"{self.prefix}bucket:region:{region}"

    def idempotency(self, user_id: str, key: str, board: str = DEFAULT_BOARD,
                    generation: str = "") -> str:
        """The first answer to an Idempotency-Key, per board (not per season)."""
        return f"{self.board_prefix(board, generation)}idem:{user_id}:{key}"

    def board_prefix(self, board: str, generation: str) -> str:
        """``lb:N:b:{board}:{generation}:``; ``lb:N:`` for ``default`` (its legacy keys)."""
        if board == DEFAULT_BOARD:
            return self.prefix
        if not generation:
            raise ValueError(f"board {board!r} needs its generation")
        return f"{self.prefix}b:{board}:{generation}:"

    def season(self, board: str, generation: str, season: int) -> SeasonKeys:
        """Season ``season`` of a board; ``default`` season 1 is today's ``board:``/``user:``."""
        if board == DEFAULT_BOARD:
            if season != 1:
                raise ValueError("board default has one season, 1")
            return SeasonKeys(self.prefix)
        return SeasonKeys(f"{self.board_prefix(board, generation)}{season}:")

    def seasons(self, board: str, generation: str) -> str:
        """SET of a board's season numbers that have keys on this instance."""
        return f"{self.board_prefix(board, generation)}seasons"

    def freed(self, board: str, generation: str) -> str:
        """Highest season of a board whose keys were freed on this instance."""
        return f"{self.board_prefix(board, generation)}freed"

    def profile(self, user_id: str) -> str:
        """HASH ``name``: a user's current name, shown on every board (on every instance)."""
        return f"{self.prefix}profile:{user_id}"

    @property
    def profiles_rev(self) -> str:
        """Bumped on every rename (REDIS_URL's instance): cached archive answers carry names."""
        return f"{self.prefix}profiles:rev"

    def auth_bucket(self, scope: str) -> str:
        return f"{self.prefix}bucket:auth:{scope}"

    @property
    def boards(self) -> str:
        """HASH board id -> generation of every live board but ``default`` (docs/boards.md)."""
        return f"{self.prefix}boards"

    @property
    def boards_rev(self) -> str:
        """Bumped on every board create/delete; also the pub/sub channel caches listen on."""
        return f"{self.prefix}boards:rev"

    @property
    def clock(self) -> str:
        return f"{self.prefix}clock"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}epoch"

    @property
    def warming(self) -> str:
        return f"{self.prefix}warming"

    @property
    def fold_stats(self) -> str:
        return f"{self.prefix}fold"

    @property
    def rebuild_lock(self) -> str:
        return f"{self.prefix}rebuild-lock"

    @property
    def live(self) -> str:
        """Pub/sub channel: what each write changed (``leaderboard/changes.py``), published by
        the write scripts on the instance of the boards they changed."""
        return f"{self.prefix}live"


def member_for(user_id: str, reached: int) -> str:
    """The ZSET member of a user who reached their score at version ``reached``."""
    return f"{MAX_VERSION - reached:016d}{user_id}"


def user_of(member: str | bytes) -> str:
    """The user_id inside a ZSET member."""
    text = member.decode() if isinstance(member, bytes) else member
    return text[MEMBER_PREFIX_LEN:]
