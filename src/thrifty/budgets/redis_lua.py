"""The Lua scripts of ``RedisBudgetBackend`` (layout and semantics in its module docstring).

Amounts arrive as decimal integer strings and are added with ``HINCRBY`` (exact 64-bit); they
are compared as Lua doubles, exact below 2**53. ``add`` never sends ``-0`` (Redis rejects it).
"""

_LIB = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function add(key, field, amount, sign)
  if amount ~= '0' then redis.call('HINCRBY', key, field, sign .. amount) end
end
local function purge(z, now, limit, grace)
  local due = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, limit)
  for _, r in ipairs(due) do
    local v = redis.call('HMGET', r, 'm', 't', 'k', 's')
    if v[4] == 'r' then
      if v[3] and v[3] ~= '' then
        for key in string.gmatch(v[3], '[^\n]+') do
          add(key, 'rm', v[1], '-')
          add(key, 'rt', v[2], '-')
        end
      end
      redis.call('HSET', r, 's', 'x')
      redis.call('PEXPIRE', r, grace)
    end
    redis.call('ZREM', z, r)
  end
end
local function counters(key)
  local v = redis.call('HMGET', key, 'sm', 'rm', 'st', 'rt')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0
end
"""

# KEYS: zset, reservation hash, counter_1..N.  ARGV: ttl_ms, micros, tokens, purge limit,
# grace_ms, then per counter: cap micros (-1: none), cap tokens (-1: none), retention ms (0: none)
# Returns {0, sm, rm, st, rt (after) x N} | {i, dim (1 usd, 2 tokens), sm, rm, st, rt} | {-1}
RESERVE = (
    _LIB
    + r"""
local z, rk = KEYS[1], KEYS[2]
local m, tk = ARGV[2], ARGV[3]
local now = now_ms()
purge(z, now, tonumber(ARGV[4]), tonumber(ARGV[5]))
if redis.call('HGET', rk, 's') == 'r' then return {-1} end
local nm, nt = tonumber(m), tonumber(tk)
local out = {0}
for i = 1, #KEYS - 2 do
  local sm, rm, st, rt = counters(KEYS[i + 2])
  local capm, capt = tonumber(ARGV[3 + 3 * i]), tonumber(ARGV[4 + 3 * i])
  if capm >= 0 and sm + rm + nm > capm then return {i, 1, sm, rm, st, rt} end
  if capt >= 0 and st + rt + nt > capt then return {i, 2, sm, rm, st, rt} end
  out[#out + 1] = sm; out[#out + 1] = rm + nm; out[#out + 1] = st; out[#out + 1] = rt + nt
end
local keys = {}
for i = 1, #KEYS - 2 do
  local key = KEYS[i + 2]
  add(key, 'rm', m, '')
  add(key, 'rt', tk, '')
  redis.call('HSETNX', key, 'sm', '0')
  local keep = tonumber(ARGV[5 + 3 * i])
  if keep > 0 then redis.call('PEXPIRE', key, keep) end
  keys[i] = key
end
redis.call('DEL', rk)
redis.call('HSET', rk, 'm', m, 't', tk, 'k', table.concat(keys, '\n'), 's', 'r')
redis.call('ZADD', z, string.format('%.0f', now + tonumber(ARGV[1])), rk)
return out
"""
)

# KEYS: zset, reservation hash.  ARGV: mode ('s' settle | 'r' release), actual micros,
# actual tokens, purge limit, grace_ms.  Returns {status (0 unknown, 1 live, 2 late), m, t}.
FINISH = (
    _LIB
    + r"""
local z, rk = KEYS[1], KEYS[2]
purge(z, now_ms(), tonumber(ARGV[4]), tonumber(ARGV[5]))
local v = redis.call('HMGET', rk, 'm', 't', 'k', 's')
if not v[4] then return {0, 0, 0} end
local live = v[4] == 'r'
if v[3] and v[3] ~= '' then
  for key in string.gmatch(v[3], '[^\n]+') do
    if live then
      add(key, 'rm', v[1], '-')
      add(key, 'rt', v[2], '-')
    end
    if ARGV[1] == 's' then
      add(key, 'sm', ARGV[2], '')
      add(key, 'st', ARGV[3], '')
    end
  end
end
redis.call('DEL', rk)
redis.call('ZREM', z, rk)
if live then return {1, tonumber(v[1]), tonumber(v[2])} end
return {2, tonumber(v[1]), tonumber(v[2])}
"""
)

# KEYS: zset, counter_1..N.  ARGV: purge limit, grace_ms, 'reset' to zero the spend after reading.
# Returns {sm, rm, st, rt} x N (before any reset).
READ = (
    _LIB
    + r"""
purge(KEYS[1], now_ms(), tonumber(ARGV[1]), tonumber(ARGV[2]))
local out = {}
for i = 2, #KEYS do
  local sm, rm, st, rt = counters(KEYS[i])
  out[#out + 1] = sm; out[#out + 1] = rm; out[#out + 1] = st; out[#out + 1] = rt
  if ARGV[3] == 'reset' then redis.call('HSET', KEYS[i], 'sm', '0', 'st', '0') end
end
return out
"""
)
