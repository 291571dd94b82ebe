"""The Lua that applies stored events to an instance: RESTORE, FOLD_GLOBAL, ACK_DELETE.

RESTORE (a rebuild from Postgres, a shard's replay of writes Postgres lacks) and FOLD_GLOBAL
(writes of regions on other instances, folded into GLOBAL) take events of any boards and seasons
in one call. The call lists its *targets* first, one per (board, season) of the batch, and each
event names its target by index (``leaderboard.fold.Targets`` builds that section):

  prefix, GLOBAL key, board ('' for default), generation, season, order, seasons key, freed key

A target of another board than default applies only while the registry (``Keys.boards``) holds
the board with that generation (a deleted board's keys are purged, a late event must not bring
them back) and while its season is above the board's ``freed`` mark on this instance (a freed
season stays freed); it SADDs its season into the board's ``seasons`` set. The ZSET score is the
sort key: the score on desc boards, -score on asc ones (docs/boards.md, "asc order").
"""

from __future__ import annotations

# Shared Lua helpers: the targets section, and one event applied where the instance has no
# newer version of the user. boards: 'g' the GLOBAL board, 'r' the region's, 'gr' both.
_APPLY = """
local function read_targets(registry, first)
  local out, i = {}, first + 1
  for n = 1, tonumber(ARGV[first]) do
    local tg = {prefix = ARGV[i], global = ARGV[i + 1], board = ARGV[i + 2], gen = ARGV[i + 3],
                season = ARGV[i + 4], asc = ARGV[i + 5] == 'asc', state = 'ok'}
    if tg.board ~= '' then
      local reg = redis.call('HGET', registry, tg.board)
      if reg ~= tg.gen then
        if reg then tg.state = 'drop' else tg.state = 'absent' end
      elseif tonumber(redis.call('GET', ARGV[i + 7]) or '0') >= tonumber(tg.season) then
        tg.state = 'drop'
      else
        redis.call('SADD', ARGV[i + 6], tg.season)
      end
    end
    out[n] = tg
    i = i + 8
  end
  return out, i
end
local function apply(tg, boards, uid, name, region, score, version, reached, ts, meta)
  local g, r = string.find(boards, 'g', 1, true), string.find(boards, 'r', 1, true)
  local prefix = tg.prefix
  -- an erased user's events (in a stream, or not yet stored) never come back
  if redis.call('HEXISTS', string.match(prefix, '^lb:[^:]+:') .. 'profile:' .. uid, 'erased') == 1
  then return false end
  local hkey = prefix .. 'user:' .. uid
  local cur = redis.call('HMGET', hkey, 'version', 'member', 'region')
  if cur[1] and tonumber(cur[1]) >= tonumber(version) then return false end
  if cur[2] then
    if g then redis.call('ZREM', tg.global, cur[2]) end
    if r then redis.call('ZREM', prefix .. 'board:' .. cur[3], cur[2]) end
  end
  local member = string.format('%016d', 9007199254740991 - tonumber(reached)) .. uid
  local sk = score
  if tg.asc then sk = string.format('%d', -tonumber(score)) end
  if g then redis.call('ZADD', tg.global, sk, member) end
  if r and region ~= 'GLOBAL' then redis.call('ZADD', prefix .. 'board:' .. region, sk, member) end
  redis.call('HSET', hkey, 'name', name, 'region', region, 'score', score, 'version', version,
    'reached', reached, 'member', member, 'updated_at', ts)
  if meta == '' then redis.call('HDEL', hkey, 'meta') else redis.call('HSET', hkey, 'meta', meta) end
  return true
end
local function raise_clock(clock, v)
  if v > tonumber(redis.call('GET', clock) or '0') then
    redis.call('SET', clock, string.format('%d', v))
  end
end
"""

# Put events back (a rebuild from Postgres, or a shard's events not yet stored there) without
# ever overwriting a newer version of the same user.
RESTORE = _APPLY + """
-- KEYS: 1 clock, 2 stream (used when ARGV[1] == '1'), 3 registry
-- ARGV: 1 '1' to append each applied event to the stream again, 2 number of targets, then 8
--       fields per target (module docstring), then 10 fields per event: target (1-based),
--       user_id, name, region, score, version, reached, ts, boards, metadata ('' = none)
-- Returns the number of events applied (events of a dropped or unregistered target are not).
local targets, first = read_targets(KEYS[3], 2)
local applied, maxv = 0, 0
for i = first, #ARGV, 10 do
  local tg = targets[tonumber(ARGV[i])]
  local uid, name, region = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local score, version, reached, ts = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local meta = ARGV[i + 9]
  if tg.state == 'ok' then
    if tonumber(version) > maxv then maxv = tonumber(version) end
    if apply(tg, ARGV[i + 8], uid, name, region, score, version, reached, ts, meta) then
      if ARGV[1] == '1' then
        local ev = {'e', score .. ' ' .. version .. ' ' .. reached .. ' ' .. ts .. ' ' .. region ..
          ' ' .. uid .. ' ' .. name}
        if tg.board ~= '' then ev[3], ev[4] = 'b', tg.board .. ' ' .. tg.season end
        if meta ~= '' then ev[#ev + 1], ev[#ev + 2] = 'm', meta end
        redis.call('XADD', KEYS[2], '*', unpack(ev))
      end
      applied = applied + 1
    end
  end
end
raise_clock(KEYS[1], maxv)
return applied
"""

# Acknowledge and delete a writer's stored entries. The IDs travel as ONE space-separated
# argument: encoding a thousand separate arguments costs the writer more than the upsert.
ACK_DELETE = """
-- KEYS: 1 stream; ARGV: 1 group, 2 entry IDs separated by spaces. Returns the number acked.
local ids = {}
for id in string.gmatch(ARGV[2], '%S+') do ids[#ids + 1] = id end
local acked = 0
for i = 1, #ids, 500 do
  local last = math.min(i + 499, #ids)
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, i, last))
  redis.call('XDEL', KEYS[1], unpack(ids, i, last))
end
return acked
"""

# Upper bounds (µs) of the GLOBAL fold-lag histogram kept in lb:B:fold (the last is +inf).
FOLD_LAG_BUCKETS_US = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)

# Writes of a region on another Redis instance, folded into GLOBAL on GLOBAL's instance: by the
# shard right after its write (source 'fast'), and again by the writers before they acknowledge
# the event (source 'net', the safety net). Version-guarded, so applying an event twice is a no-op.
FOLD_GLOBAL = _APPLY + """
-- KEYS: 1 clock, 2 epoch, 3 warming, 4 fold statistics hash, 5 registry
-- ARGV: 1 source ('fast' | 'net'), 2 number of targets, then 8 fields per target (module
--       docstring), then 9 fields per event: target (1-based), user_id, name, region, score,
--       version, reached, ts, metadata ('' = none)
-- Returns per event the user's 0-based GLOBAL rank after the fold, -1 while GLOBAL is warming,
-- -2 when the event's target is dropped (its board deleted or created again, its season freed
-- here), -3 when this instance's registry lacks the board (not folded: fold it again later).
-- Each applied event adds its lag (this instance's TIME - the event's version, in µs) to the
-- histogram in KEYS[4]: fields le_1000 ... le_10000000, le_inf, max_us, last_us, applied_<source>.
local targets, first = read_targets(KEYS[5], 2)
local maxv, out = 0, {}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local warm = redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[3]) == 1
local bounds = {1000, 10000, 100000, 1000000, 10000000}
for i = first, #ARGV, 9 do
  local tg = targets[tonumber(ARGV[i])]
  local uid, version = ARGV[i + 1], tonumber(ARGV[i + 5])
  local rank = -2
  if tg.state == 'absent' then rank = -3 end
  if tg.state == 'ok' then
    if version > maxv then maxv = version end
    local was = redis.call('HGET', tg.prefix .. 'user:' .. uid, 'member')
    was = was and redis.call('ZSCORE', tg.global, was)
    if was then was = string.format('%d', tonumber(was)) else was = '-' end
    if apply(tg, 'g', uid, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
             ARGV[i + 7], ARGV[i + 8]) then
      -- announced inside the fold, as the write script does (leaderboard/changes.py)
      local sk = ARGV[i + 4]
      if tg.asc then sk = string.format('%d', -tonumber(sk)) end
      local b = tg.board
      if b == '' then b = 'default' end
      redis.call('PUBLISH', string.match(tg.prefix, '^lb:[^:]+:') .. 'live',
        b .. ' ' .. tg.season .. ' GLOBAL ' .. was .. ' ' .. sk .. ' ' .. uid)
      local lag = now - version
      if lag < 0 then lag = 0 end
      local field = 'le_inf'
      for _, b in ipairs(bounds) do
        if lag <= b then field = 'le_' .. b; break end
      end
      redis.call('HINCRBY', KEYS[4], field, 1)
      redis.call('HINCRBY', KEYS[4], 'applied_' .. ARGV[1], 1)
      redis.call('HSET', KEYS[4], 'last_us', string.format('%d', lag))
      if lag > tonumber(redis.call('HGET', KEYS[4], 'max_us') or '0') then
        redis.call('HSET', KEYS[4], 'max_us', string.format('%d', lag))
      end
    end
    rank = -1
    if not warm then
      local member = redis.call('HGET', tg.prefix .. 'user:' .. uid, 'member')
      rank = redis.call('ZREVRANK', tg.global, member)
    end
  end
  out[#out + 1] = rank
end
raise_clock(KEYS[1], maxv)
return out
"""
