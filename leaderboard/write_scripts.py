"""The Lua of admission and score writes: WRITE_SCORE (one score write, atomically) and
TAKE_TOKENS (plain token buckets, for sign-up and login limits).

Both share the token-bucket helpers ``_BUCKETS``. The keys they touch are named by
``leaderboard.keys.Keys``, whose module docstring describes the layout; both scripts stay
importable from ``leaderboard.keys``.
"""

from __future__ import annotations

# Shared Lua helpers: token buckets stored as {t: tokens, ts: µs of the last take}.
_BUCKETS = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function available(key, cap, per_us, now)
  local b = redis.call('HMGET', key, 't', 'ts')
  if not b[1] then return cap end
  local elapsed = now - tonumber(b[2])
  if elapsed < 0 then elapsed = 0 end
  local tokens = tonumber(b[1]) + elapsed * per_us
  if tokens > cap then tokens = cap end
  return tokens
end
local function take(key, tokens, cap, per_us, now)
  redis.call('HSET', key, 't', string.format('%.6f', tokens - 1), 'ts', string.format('%d', now))
  redis.call('PEXPIRE', key, math.ceil(cap / per_us / 1000) + 1000)
end
"""

# One score write, atomically: admission (backlog, token buckets), both boards, the user hash
# and the stream event. Every check runs before the first write, so a refused write changes
# nothing and an admitted one takes exactly one token from each bucket. A write of board
# default passes KEYS 1-10 and ARGV 1-13 only (season 1, today's keys); any other board also
# passes KEYS 11-15 and ARGV 14-20, and the script picks its season by this instance's clock.
WRITE_SCORE = _BUCKETS + """
-- KEYS: 1 user hash, 2 GLOBAL board, 3 region board (= KEYS[2] for GLOBAL users), all three of
--       season k, 4 shard stream, 5 clock, 6 user bucket, 7 region bucket,
--       8 idempotency record, 9 epoch, 10 warming (while either says the board is incomplete,
--       the rank is -1); other boards: 11-13 as 1-3 in season k + 1, 14 registry,
--       15 the board's seasons set; the last key (KEYS[#KEYS]) is the user's profile, whose
--       name (when set, by a rename) wins over ARGV[2]; an erased user's writes: {'erased'}
-- ARGV: 1 user_id, 2 name, 3 region, 4 mode (set|add|create|best), 5 value, 6 max |score|,
--       7 user capacity, 8 user refill per us, 9 region capacity, 10 region refill per us,
--       11 backlog limit (capacity or limit 0: that check is off),
--       12 request fingerprint ('' = no idempotency key), 13 idempotency record ttl (s),
--       14 metadata (compact JSON; '' = none: an applied write sets the entry's to it);
--       other boards: 15 board id, 16 generation, 17 order ('desc'|'asc'), 18 season k,
--       19 start of k, 20 end of k, 21 end of k + 1 (µs; '' = no end)
-- Returns {'ok', score, version, global rank (0-based), user tokens left (-1: no limit), reached,
--      season, improved (1|0: a best write that did not improve wrote nothing), name, metadata},
--      {'replay', score, version, rank, -1, '0', season, improved, name, metadata} (the first
--      answer to this
--      idempotency key), or {'exists'} / {'out_of_range'} / {'queue_full'} /
--      {'rate_limited', scope, retry us} / {'key_reused'} (same key, different request) /
--      {'warming'} (an add, create or best for a user not yet restored after Redis lost its
--      data: the old score is only in Postgres) / {'board_changed'} (the registry does not hold
--      this board's generation) / {'season_not_started', t} / {'season_stale', t} (t is outside
--      both candidate seasons: the shard recomputes them from t and runs the write again).
local board = ARGV[15]
local now = nil
local profile = redis.call('HMGET', KEYS[#KEYS], 'name', 'erased')
if profile[2] then return {'erased'} end
local name = profile[1] or ARGV[2]
if board then
  if redis.call('HGET', KEYS[14], board) ~= ARGV[16] then
    if redis.call('EXISTS', KEYS[9]) == 0 then return {'warming'} end
    return {'board_changed'}
  end
end
if ARGV[12] ~= '' then
  local prev = redis.call('HMGET', KEYS[8], 'fp', 'score', 'version', 'rank', 'season', 'improved',
                          'meta')
  if prev[1] then
    if prev[1] ~= ARGV[12] then return {'key_reused'} end
    return {'replay', prev[2], prev[3], tonumber(prev[4]), -1, '0', prev[5] or '1', prev[6] or '1',
            name, prev[7] or ''}
  end
end
local season, hkey, gkey, rkey = '1', KEYS[1], KEYS[2], KEYS[3]
if board then
  now = now_us()
  local t = now
  local c = tonumber(redis.call('GET', KEYS[5]) or '0')
  if t <= c then t = c + 1 end
  local k = tonumber(ARGV[18])
  if t < tonumber(ARGV[19]) then
    if k == 1 then return {'season_not_started', t} end
    return {'season_stale', t}
  end
  if ARGV[20] == '' or t < tonumber(ARGV[20]) then
    season = ARGV[18]
  elseif ARGV[21] == '' or t < tonumber(ARGV[21]) then
    season = string.format('%d', k + 1)
    hkey, gkey, rkey = KEYS[11], KEYS[12], KEYS[13]
  else
    return {'season_stale', t}
  end
end
local cur = redis.call('HMGET', hkey, 'score', 'version', 'member', 'reached', 'meta')
local exists = cur[1] ~= false
local mode = ARGV[4]
if not exists and mode ~= 'set' and redis.call('EXISTS', KEYS[9]) == 0 then
  return {'warming'}
end
if mode == 'create' and exists then return {'exists'} end
local old = 0
if exists then old = tonumber(cur[1]) end
local new = tonumber(ARGV[5])
local maxabs = tonumber(ARGV[6])
-- beyond 2^53 - 1 a double no longer holds every integer, so the sum below could round
if math.abs(new) > maxabs then return {'out_of_range'} end
if mode == 'add' then new = old + new end
if new > maxabs or new < -maxabs then return {'out_of_range'} end
local improved = 1
if mode == 'best' and exists then
  if ARGV[17] == 'asc' then
    if new >= old then improved = 0 end
  elseif new <= old then improved = 0 end
end
local limit = tonumber(ARGV[11])
if improved == 1 and limit > 0 and redis.call('XLEN', KEYS[4]) >= limit then
  return {'queue_full'}
end
now = now or now_us()
local ucap, uper = tonumber(ARGV[7]), tonumber(ARGV[8])
local rcap, rper = tonumber(ARGV[9]), tonumber(ARGV[10])
local utok, rtok = -1, -1
if ucap > 0 then
  utok = available(KEYS[6], ucap, uper, now)
  if utok < 1 then return {'rate_limited', 'user', math.ceil((1 - utok) / uper)} end
end
if rcap > 0 then
  rtok = available(KEYS[7], rcap, rper, now)
  if rtok < 1 then return {'rate_limited', 'region', math.ceil((1 - rtok) / rper)} end
end
if ucap > 0 then take(KEYS[6], utok, ucap, uper, now) end
if rcap > 0 then take(KEYS[7], rtok, rcap, rper, now) end
local left = -1
if ucap > 0 then left = math.floor(utok - 1) end
local s, vs, member, reached, meta = cur[1], cur[2], cur[3], cur[4], cur[5] or ''
if improved == 1 then
  local version = now
  local clock = tonumber(redis.call('GET', KEYS[5]) or '0')
  if version <= clock then version = clock + 1 end
  if exists and version <= tonumber(cur[2]) then version = tonumber(cur[2]) + 1 end
  vs = string.format('%d', version)
  redis.call('SET', KEYS[5], vs)
  if (not exists) or new ~= old then
    if exists then
      redis.call('ZREM', gkey, member)
      redis.call('ZREM', rkey, member)
    end
    reached = vs
    member = string.format('%016d', 9007199254740991 - version) .. ARGV[1]
  end
  s = string.format('%d', new)
  local sk = s
  if ARGV[17] == 'asc' then sk = string.format('%d', -new) end
  redis.call('ZADD', gkey, sk, member)
  if rkey ~= gkey then redis.call('ZADD', rkey, sk, member) end
  local ts = string.format('%d', math.floor(version / 1000))
  redis.call('HSET', hkey, 'name', name, 'region', ARGV[3], 'score', s, 'version', vs,
    'reached', reached, 'member', member, 'updated_at', ts)
  meta = ARGV[14]
  if meta == '' then redis.call('HDEL', hkey, 'meta') else redis.call('HSET', hkey, 'meta', meta) end
  -- the event: one field, 'score version reached ts region user_id name' (pipeline/events.py),
  -- 'b' = 'board season' for other boards than default, 'm' = the metadata when there is any
  local ev = {'e', s .. ' ' .. vs .. ' ' .. reached .. ' ' .. ts .. ' ' .. ARGV[3] .. ' ' ..
    ARGV[1] .. ' ' .. name}
  if board then
    ev[3], ev[4] = 'b', board .. ' ' .. season
    redis.call('SADD', KEYS[15], season)
  end
  if meta ~= '' then
    ev[#ev + 1], ev[#ev + 2] = 'm', meta
  end
  redis.call('XADD', KEYS[4], '*', unpack(ev))
  -- the announcement, inside the write (leaderboard/changes.py): 'board season boards old new
  -- user' on lb:N:live, for the gateways' read caches and live views
  local osk = '-'
  if exists then
    osk = cur[1]
    if ARGV[17] == 'asc' then osk = string.format('%d', -tonumber(cur[1])) end
  end
  local changed = ARGV[3]
  if rkey ~= gkey then changed = ARGV[3] .. ',GLOBAL' end
  redis.call('PUBLISH', string.match(KEYS[5], '^lb:[^:]+:') .. 'live', (board or 'default') ..
    ' ' .. season .. ' ' .. changed .. ' ' .. osk .. ' ' .. sk .. ' ' .. ARGV[1])
end
local rank = redis.call('ZREVRANK', gkey, member)
if redis.call('EXISTS', KEYS[9]) == 0 or redis.call('EXISTS', KEYS[10]) == 1 then rank = -1 end
if ARGV[12] ~= '' then
  if board then
    redis.call('HSET', KEYS[8], 'fp', ARGV[12], 'score', s, 'version', vs, 'rank', rank,
      'season', season, 'improved', improved)
  else
    redis.call('HSET', KEYS[8], 'fp', ARGV[12], 'score', s, 'version', vs, 'rank', rank)
  end
  if meta ~= '' then redis.call('HSET', KEYS[8], 'meta', meta) end
  redis.call('EXPIRE', KEYS[8], tonumber(ARGV[13]))
end
return {'ok', s, vs, rank, left, reached, season, improved, name, meta}
"""

# Plain token buckets (sign-up and login limits): take one token from each, or from none.
TAKE_TOKENS = _BUCKETS + """
-- KEYS: the buckets
-- ARGV: capacity and refill per us of each bucket, in KEYS order
-- Returns {1, tokens left in the first} when admitted, {0, index, retry us} when not.
local now = now_us()
local have = {}
for i, key in ipairs(KEYS) do
  local cap, per_us = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tokens = available(key, cap, per_us, now)
  if tokens < 1 then return {0, i, math.ceil((1 - tokens) / per_us)} end
  have[i] = tokens
end
for i, key in ipairs(KEYS) do
  take(key, have[i], tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]), now)
end
return {1, math.floor(have[1] - 1)}
"""
