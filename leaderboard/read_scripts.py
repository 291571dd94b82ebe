"""The read scripts: top-N, rank, around-me and friends' ranks, of board ``default`` (the seed's
keys) and of any board's season (which also pick the live season by the instance's clock).

Each read is one script call: one round trip, one consistent view of the board.
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

# Reads answer 'warming' while the board may be incomplete: Redis lost its data (the epoch
# marker is gone) or a rebuild from Postgres is running.
_WARMING = """
local function warming(epoch, flag)
  return redis.call('EXISTS', epoch) == 0 or redis.call('EXISTS', flag) == 1
end
"""

TOP = _ENTRIES + _WARMING + """
-- KEYS: 1 board, 2 epoch, 3 warming
-- ARGV: 1 limit, 2 user hash key prefix
-- Returns {total, uid, name, region, score, uid, ...} in rank order, or 'warming'.
if warming(KEYS[2], KEYS[3]) then return 'warming' end
local members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local out = entries(members, ARGV[2])
table.insert(out, 1, redis.call('ZCARD', KEYS[1]))
return out
"""

RANK = _WARMING + """
-- KEYS: 1 board, 2 user hash, 3 epoch, 4 warming
-- Returns {rank0, name, region, score}, false when the user is not on the board, or 'warming'.
if warming(KEYS[3], KEYS[4]) then return 'warming' end
local h = redis.call('HMGET', KEYS[2], 'member', 'name', 'region', 'score')
if not h[1] then return false end
local r = redis.call('ZREVRANK', KEYS[1], h[1])
if not r then return false end
return {r, h[2], h[3], h[4]}
"""

AROUND = _ENTRIES + _WARMING + """
-- KEYS: 1 board, 2 user hash, 3 epoch, 4 warming
-- ARGV: 1 range, 2 user hash key prefix
-- Returns {self rank0, first rank0, uid, name, region, score, ...}, false, or 'warming'.
if warming(KEYS[3], KEYS[4]) then return 'warming' end
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

# Reads of a board's season (docs/boards.md, "Reads"). Like the write script, a live read picks
# season k or k + 1 by this instance's clock, t = max(TIME, clock + 1), nothing written; so a read
# agrees with the writes on its instance at a boundary, not with the reader's host clock.
_BOARD_READ = _ENTRIES + _WARMING + """
-- KEYS: 1 registry, 2 clock, 3 epoch, 4 warming, 5 board of season k, 6 board of k + 1
--       7 user hash of k, 8 of k + 1 (top: unused),
--       9 the board's freed mark (the highest season whose keys left this instance)
-- ARGV: 1 board id, 2 generation, 3 start of k, 4 end of k, 5 end of k + 1 (µs, '' = none),
--       6 user hash prefix of k, 7 of k + 1, 8 limit or span, 9 '1': season k as asked (no pick),
--       10 k
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
-- Returns {w, total, uid, name, region, score, ...} in rank order.
local out = entries(redis.call('ZREVRANGE', board, 0, tonumber(ARGV[8]) - 1), prefix)
table.insert(out, 1, redis.call('ZCARD', board))
table.insert(out, 1, w)
return out
"""

BOARD_RANK = _BOARD_READ + """
-- Returns {w, rank0, name, region, score}, or {w} when the user is not on the board.
local h = redis.call('HMGET', KEYS[6 + w], 'member', 'name', 'region', 'score')
if not h[1] then return {w} end
local r = redis.call('ZREVRANK', board, h[1])
if not r then return {w} end
return {w, r, h[2], h[3], h[4]}
"""

BOARD_AROUND = _BOARD_READ + """
-- Returns {w, self rank0, first rank0, uid, name, region, score, ...}, or {w}.
local member = redis.call('HGET', KEYS[6 + w], 'member')
if not member then return {w} end
local r = redis.call('ZREVRANK', board, member)
if not r then return {w} end
local n = tonumber(ARGV[8])
local first = r - n
if first < 0 then first = 0 end
local out = entries(redis.call('ZREVRANGE', board, first, r + n), prefix)
table.insert(out, 1, first)
table.insert(out, 1, r)
table.insert(out, 1, w)
return out
"""
