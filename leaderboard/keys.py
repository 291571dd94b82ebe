"""Redis key templates and the Lua scripts that read and write them.

Layout for board B (only ``default`` today; seasons/boards fit as more B):
  lb:B:board:REGION   ZSET, member = 16-digit (MAX - reached) + user_id, score = score
  lb:B:user:USER      HASH name region score version reached member updated_at
  lb:B:stream:SHARD   STREAM of write events, consumed by the writer pool
  lb:B:dead:SHARD     STREAM of events the writers could not store
  lb:B:clock          last version handed out (strictly increasing per instance)

Ties: equal scores are ordered by member bytes, and ZREVRANGE walks members in
descending byte order; the prefix (MAX - reached) is therefore larger for whoever
reached the score earlier, so the first to reach a score ranks higher. Scores stay
exact because |score| <= 2^53 - 1, the range where doubles hold every integer.
"""

from __future__ import annotations

from dataclasses import dataclass

MEMBER_PREFIX_LEN = 16
MAX_VERSION = 2**53 - 1
WRITERS_GROUP = "writers"


@dataclass(frozen=True)
class Keys:
    """Key names of one board."""

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

    @property
    def clock(self) -> str:
        return f"{self.prefix}clock"


def member_for(user_id: str, reached: int) -> str:
    """The ZSET member of a user who reached their score at version ``reached``."""
    return f"{MAX_VERSION - reached:016d}{user_id}"


def user_of(member: str | bytes) -> str:
    """The user_id inside a ZSET member."""
    text = member.decode() if isinstance(member, bytes) else member
    return text[MEMBER_PREFIX_LEN:]


# One score write, atomically: both boards, the user hash and the stream event.
WRITE_SCORE = """
-- KEYS: 1 user hash, 2 GLOBAL board, 3 region board (= KEYS[2] for GLOBAL users),
--       4 shard stream, 5 clock
-- ARGV: 1 user_id, 2 name, 3 region, 4 mode (set|add|create), 5 value, 6 max |score|
-- Returns {'ok', score, version, global rank (0-based)} or {'exists'} / {'out_of_range'}.
local cur = redis.call('HMGET', KEYS[1], 'score', 'version', 'member', 'reached')
local exists = cur[1] ~= false
if ARGV[4] == 'create' and exists then return {'exists'} end
local old = 0
if exists then old = tonumber(cur[1]) end
local new = tonumber(ARGV[5])
if ARGV[4] == 'add' then new = old + new end
local maxabs = tonumber(ARGV[6])
if new > maxabs or new < -maxabs then return {'out_of_range'} end
local t = redis.call('TIME')
local version = tonumber(t[1]) * 1000000 + tonumber(t[2])
local clock = tonumber(redis.call('GET', KEYS[5]) or '0')
if version <= clock then version = clock + 1 end
if exists and version <= tonumber(cur[2]) then version = tonumber(cur[2]) + 1 end
local vs = string.format('%d', version)
redis.call('SET', KEYS[5], vs)
local member, reached = cur[3], cur[4]
if (not exists) or new ~= old then
  if exists then
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', KEYS[3], member)
  end
  reached = vs
  member = string.format('%016d', 9007199254740991 - version) .. ARGV[1]
end
local s = string.format('%d', new)
redis.call('ZADD', KEYS[2], s, member)
if KEYS[3] ~= KEYS[2] then redis.call('ZADD', KEYS[3], s, member) end
local ts = string.format('%d', math.floor(version / 1000))
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'region', ARGV[3], 'score', s, 'version', vs,
  'reached', reached, 'member', member, 'updated_at', ts)
redis.call('XADD', KEYS[4], '*', 'user_id', ARGV[1], 'name', ARGV[2], 'region', ARGV[3],
  'score', s, 'version', vs, 'reached', reached, 'ts', ts)
return {'ok', s, vs, redis.call('ZREVRANK', KEYS[2], member)}
"""

# Shared Lua helper: the entry fields of the members in a ZREVRANGE slice.
_ENTRIES = """
local function entries(members, prefix)
  local out = {}
  for i, m in ipairs(members) do
    local uid = string.sub(m, 17)
    local h = redis.call('HMGET', prefix .. uid, 'name', 'region', 'score')
    out[#out + 1] = uid
    out[#out + 1] = h[1] or ''
    out[#out + 1] = h[2] or ''
    out[#out + 1] = h[3] or '0'
  end
  return out
end
"""

TOP = _ENTRIES + """
-- KEYS: 1 board
-- ARGV: 1 limit, 2 user hash key prefix
-- Returns {total, uid, name, region, score, uid, ...} in rank order.
local members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local out = entries(members, ARGV[2])
table.insert(out, 1, redis.call('ZCARD', KEYS[1]))
return out
"""

RANK = """
-- KEYS: 1 board, 2 user hash
-- Returns {rank0, name, region, score} or false when the user is not on the board.
local h = redis.call('HMGET', KEYS[2], 'member', 'name', 'region', 'score')
if not h[1] then return false end
local r = redis.call('ZREVRANK', KEYS[1], h[1])
if not r then return false end
return {r, h[2], h[3], h[4]}
"""

AROUND = _ENTRIES + """
-- KEYS: 1 board, 2 user hash
-- ARGV: 1 range, 2 user hash key prefix
-- Returns {self rank0, first rank0, uid, name, region, score, ...} or false.
local member = redis.call('HGET', KEYS[2], 'member')
if not member then return false end
local r = redis.call('ZREVRANK', KEYS[1], member)
if not r then return false end
local n = tonumber(ARGV[1])
local first = r - n
if first < 0 then first = 0 end
local out = entries(redis.call('ZREVRANGE', KEYS[1], first, r + n), ARGV[2])
table.insert(out, 1, first)
table.insert(out, 1, r)
return out
"""
