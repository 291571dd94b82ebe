"""The read scripts: top-N, rank, around-me and friends' ranks, of board ``default`` (the seed's
keys) and of any board's season (which also pick the live season by the instance's clock).

Each read is one script call: one round trip, one consistent view of the board.
"""

# Shared Lua helpers: a user's profile name (set by a rename; it wins over the name the entry
# was written with), and the entry fields of the members in a ZREVRANGE slice. The namespace
# ``lb:{N}:`` starts every key (N has no ':'), and user ids have none either.
_ENTRIES = """
local function profile_name(ns, uid)
  return redis.call('HGET', ns .. 'profile:' .. uid, 'name')
end

local function entries(members, prefix)
  local out = {}
  local ns = string.match(prefix, '^lb:[^:]+:')
  for i, m in ipairs(members) do
    local uid = string.sub(m, 17)
    local h = redis.call('HMGET', prefix .. uid, 'name', 'region', 'score', 'meta')
    out[#out + 1] = uid
    out[#out + 1] = profile_name(ns, uid) or h[1] or ''
    out[#out + 1] = h[2] or ''
    out[#out + 1] = h[3] or '0'
    out[#out + 1] = h[4] or ''
  end
  return out
end
"""

# Reads answer 'warming' while the board may be incomplete: Redis lost its data (the epoch
# marker is gone) or a rebuild from Postgres is running.
_WARMING = """
local function warming(epoch, flag)
  return redis.call('EXISTS', epoch) == 0 or redis.call('EXISTS', flag) == 1
end
"""

# The read bodies shared by board default's scripts and every board's season scripts.
# A page starts at a rank (0-based) or after a cursor: the position (sort key, member) of the
# last entry of the previous page, which stays a position in the order whatever moved since.
_BODIES = _ENTRIES + """
local function after(board, sk, m)
  local s = redis.call('ZSCORE', board, m)
  if s and tonumber(s) == tonumber(sk) then return redis.call('ZREVRANK', board, m) + 1 end
  -- m moved or left: m .. NUL sorts right after m, so what ranks below it is what ranks below
  -- the position (sk, m); it is added and removed within this script, unseen by anyone else
  local f = m .. string.char(0)
  redis.call('ZADD', board, sk, f)
  local r = redis.call('ZREVRANK', board, f)
  redis.call('ZREM', board, f)
  return r
end

-- {total, first rank0, next sort key, next member ('' on the last page), uid, name, region,
--  score, metadata, ...}
local function top_of(board, prefix, limit, start, sk, m)
  local first = 0
  if m ~= '' then first = after(board, sk, m) elseif start ~= '' then first = tonumber(start) end
  local members = redis.call('ZREVRANGE', board, first, first + limit - 1)
  local total = redis.call('ZCARD', board)
  local nsk, nm = '', ''
  if #members == limit and first + limit < total then
    nm = members[#members]
    nsk = redis.call('ZSCORE', board, nm)
  end
  local out = entries(members, prefix)
  table.insert(out, 1, nm)
  table.insert(out, 1, nsk)
  table.insert(out, 1, first)
  table.insert(out, 1, total)
  return out
end

-- {rank0, name, region, score, total, sort key of the entry just above ('' at rank 0),
--  metadata} or nil
local function rank_of(board, hash)
  local h = redis.call('HMGET', hash, 'member', 'name', 'region', 'score', 'meta')
  if not h[1] then return nil end
  local r = redis.call('ZREVRANK', board, h[1])
  if not r then return nil end
  local above = ''
  if r > 0 then above = redis.call('ZREVRANGE', board, r - 1, r - 1, 'WITHSCORES')[2] end
  local name = profile_name(string.match(hash, '^lb:[^:]+:'), string.match(hash, '([^:]*)$'))
  return {r, name or h[2], h[3], h[4], redis.call('ZCARD', board), above, h[5] or ''}
end

-- {self rank0, first rank0, total, uid, name, region, score, metadata, ...} or nil
local function around_of(board, hash, n, prefix)
  local member = redis.call('HGET', hash, 'member')
  if not member then return nil end
  local r = redis.call('ZREVRANK', board, member)
  if not r then return nil end
  local first = r - n
  if first < 0 then first = 0 end
  local out = entries(redis.call('ZREVRANGE', board, first, r + n), prefix)
  table.insert(out, 1, redis.call('ZCARD', board))
  table.insert(out, 1, first)
  table.insert(out, 1, r)
  return out
end

-- {uid, rank0, name, region, score, metadata, ...} of the users of ARGV[from..] on the board
local function ranks_of(board, prefix, from)
  local out = {}
  for i = from, #ARGV do
    local h = redis.call('HMGET', prefix .. ARGV[i], 'member', 'name', 'region', 'score', 'meta')
    local r = h[1] and redis.call('ZREVRANK', board, h[1])
    if r then
      out[#out + 1] = ARGV[i]
      out[#out + 1] = r
      out[#out + 1] = profile_name(string.match(prefix, '^lb:[^:]+:'), ARGV[i]) or h[2]
      out[#out + 1] = h[3]
      out[#out + 1] = h[4]
      out[#out + 1] = h[5] or ''
    end
  end
  return out
end
"""

TOP = _BODIES + _WARMING + """
-- KEYS: 1 board, 2 epoch, 3 warming
-- ARGV: 1 limit, 2 user hash key prefix, 3 first rank0 (''), 4-5 cursor sort key and member ('')
if warming(KEYS[2], KEYS[3]) then return 'warming' end
return top_of(KEYS[1], ARGV[2], tonumber(ARGV[1]), ARGV[3] or '', ARGV[4] or '', ARGV[5] or '')
"""

RANK = _BODIES + _WARMING + """
-- KEYS: 1 board, 2 user hash, 3 epoch, 4 warming
-- Returns rank_of's table, false when the user is not on the board, or 'warming'.
if warming(KEYS[3], KEYS[4]) then return 'warming' end
return rank_of(KEYS[1], KEYS[2]) or false
"""

AROUND = _BODIES + _WARMING + """
-- KEYS: 1 board, 2 user hash, 3 epoch, 4 warming
-- ARGV: 1 range, 2 user hash key prefix
if warming(KEYS[3], KEYS[4]) then return 'warming' end
return around_of(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2]) or false
"""

RANKS = _BODIES + _WARMING + """
-- KEYS: 1 board, 2 epoch, 3 warming. ARGV: 1 user hash key prefix, 2... user ids
if warming(KEYS[2], KEYS[3]) then return 'warming' end
return ranks_of(KEYS[1], ARGV[1], 2)
"""

# Reads of a board's season (docs/boards.md, "Reads"). Like the write script, a live read picks
# season k or k + 1 by this instance's clock, t = max(TIME, clock + 1), nothing written; so a read
# agrees with the writes on its instance at a boundary, not with the reader's host clock.
_BOARD_READ = _BODIES + _WARMING + """
-- KEYS: 1 registry, 2 clock, 3 epoch, 4 warming, 5 board of season k, 6 board of k + 1
--       7 user hash of k, 8 of k + 1 (top: unused),
--       9 the board's freed mark (the highest season whose keys left this instance)
-- ARGV: 1 board id, 2 generation, 3 start of k, 4 end of k, 5 end of k + 1 (µs, '' = none),
--       6 user hash prefix of k, 7 of k + 1, 8 limit or span, 9 '1': season k as asked (no pick),
--       10 k; top: 11 first rank0, 12-13 cursor sort key and member; ranks: 11... user ids
-- Returns 'board_changed', 'warming', 'freed' (season k as asked is archived and gone from
-- here), {'early', t} (t before the start of k), {'stale', t} (t after both candidates), or a
-- table whose first element is 1 (season k) or 2 (k + 1).
local function pick()
  if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
    if redis.call('EXISTS', KEYS[3]) == 0 then return 'warming' end
    return 'board_changed'
  end
  if warming(KEYS[3], KEYS[4]) then return 'warming' end
  if ARGV[9] == '1' and tonumber(redis.call('GET', KEYS[9]) or '0') >= tonumber(ARGV[10]) then
    return 'freed'
  end
  local now = redis.call('TIME')
  local t = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local c = tonumber(redis.call('GET', KEYS[2]) or '0')
  if t <= c then t = c + 1 end
  if t < tonumber(ARGV[3]) then return {'early', t} end
  if ARGV[9] == '1' or ARGV[4] == '' or t < tonumber(ARGV[4]) then return 1 end
  if ARGV[5] == '' or t < tonumber(ARGV[5]) then return 2 end
  return {'stale', t}
end
local w = pick()
if type(w) ~= 'number' then return w end
local board, prefix = KEYS[4 + w], ARGV[5 + w]
"""

BOARD_TOP = _BOARD_READ + """
local out = top_of(board, prefix, tonumber(ARGV[8]), ARGV[11], ARGV[12], ARGV[13])
table.insert(out, 1, w)
return out
"""

BOARD_RANK = _BOARD_READ + """
local out = rank_of(board, KEYS[6 + w]) or {}
table.insert(out, 1, w)
return out
"""

BOARD_AROUND = _BOARD_READ + """
local out = around_of(board, KEYS[6 + w], tonumber(ARGV[8]), prefix) or {}
table.insert(out, 1, w)
return out
"""

BOARD_RANKS = _BOARD_READ + """
local out = ranks_of(board, prefix, 11)
table.insert(out, 1, w)
return out
"""
