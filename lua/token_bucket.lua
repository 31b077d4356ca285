-- One atomic decision for one tenant: requests and items, all or nothing, with Mimir's
-- token bucket semantics (golang.org/x/time/rate AllowN). The pure-Python model is
-- services/mimir_edge/core/token_bucket.py; every float operation happens in the same order
-- in both, and the same scenario tables run against both.
--
-- KEYS[1]  the tenant's limits hash (written by overrides-sync), same hash tag as KEYS[2]
-- KEYS[2]  the tenant's bucket hash (written only here): rt/ru = request tokens/updated,
--          it/iu = item tokens/updated (microseconds)
-- KEYS[3]  the tenant's emergency override (written by the admin API, expires by its TTL):
--          any limit field it holds replaces the one from KEYS[1]; mode = enforce | shadow
-- ARGV     requests, items,
--          default request_rate, request_burst, ingestion_rate, ingestion_burst,
--          max_idle_ms, now_us ('' = Redis TIME)
-- Returns  {allowed 0|1, reason, remaining requests, remaining items, retry_after_us (-1 = never),
--           now_us, expire_ms, request_rate, request_burst, ingestion_rate, ingestion_burst,
--           tenant_limits 0|1, override mode ('' = no override)}; floats as "%.17g" strings, which round-trip exactly.

local MICROS = 1000000
local NEVER = -1
local SLACK_MS = 1000

local requests = tonumber(ARGV[1])
local items = tonumber(ARGV[2])
local max_idle_ms = tonumber(ARGV[7])

local now
if ARGV[8] ~= nil and ARGV[8] ~= '' then
  now = tonumber(ARGV[8])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * MICROS + tonumber(t[2])
end

local l = redis.call('HMGET', KEYS[1], 'request_rate', 'request_burst', 'ingestion_rate', 'ingestion_burst')
local tenant_limits = l[3] ~= false
local request_rate = tonumber(l[1]) or tonumber(ARGV[3])
local request_burst = tonumber(l[2]) or tonumber(ARGV[4])
local ingestion_rate = tonumber(l[3]) or tonumber(ARGV[5])
local ingestion_burst = tonumber(l[4]) or tonumber(ARGV[6])

local o = redis.call('HMGET', KEYS[3], 'request_rate', 'request_burst', 'ingestion_rate', 'ingestion_burst', 'mode')
local override = ''
if o[5] ~= false then
  override = o[5]
  request_rate = tonumber(o[1]) or request_rate
  request_burst = tonumber(o[2]) or request_burst
  ingestion_rate = tonumber(o[3]) or ingestion_rate
  ingestion_burst = tonumber(o[4]) or ingestion_burst
end

local b = redis.call('HMGET', KEYS[2], 'rt', 'ru', 'it', 'iu')

local function refill(tokens, updated, rate, burst)
  if tokens == false then
    return burst
  end
  local elapsed = now - tonumber(updated)
  if elapsed < 0 then
    elapsed = 0
  end
  return math.min(burst, tonumber(tokens) + (elapsed * rate) / MICROS)
end

-- returns ok, over_burst, tokens_after, wait_us
local function check(tokens, rate, burst, need)
  if need > burst then
    return false, true, tokens, NEVER
  end
  if tokens >= need then
    return true, false, tokens - need, 0
  end
  if rate <= 0 then
    return false, false, tokens, NEVER
  end
  return false, false, tokens, math.ceil(((need - tokens) * MICROS) / rate)
end

local function full_in_ms(tokens, rate, burst)
  if rate <= 0 then
    return max_idle_ms
  end
  return math.min(max_idle_ms, math.ceil(((burst - tokens) * 1000) / rate) + SLACK_MS)
end

local function fmt(x)
  return string.format('%.17g', x)
end

local limit_requests = request_rate > 0
local req_tokens, req_ok, req_over, req_after, req_wait = 0, true, false, 0, 0
if limit_requests then
  req_tokens = refill(b[1], b[2], request_rate, request_burst)
  req_ok, req_over, req_after, req_wait = check(req_tokens, request_rate, request_burst, requests)
end
local item_tokens = refill(b[3], b[4], ingestion_rate, ingestion_burst)
local item_ok, item_over, item_after, item_wait = check(item_tokens, ingestion_rate, ingestion_burst, items)

local reason, wait
if not req_ok then
  reason = req_over and 'request_burst' or 'request_rate'
  wait = req_wait
elseif not item_ok then
  reason = item_over and 'ingestion_burst' or 'ingestion_rate'
  wait = item_wait
end

local limits_reply = {fmt(request_rate), request_burst, fmt(ingestion_rate), ingestion_burst,
  tenant_limits and 1 or 0, override}

if reason then
  -- A denied request consumes nothing and writes nothing.
  return {0, reason, fmt(req_tokens), fmt(item_tokens), wait, now, 0,
    limits_reply[1], limits_reply[2], limits_reply[3], limits_reply[4], limits_reply[5], override}
end

local now_s = string.format('%d', now)
local expire_ms = full_in_ms(item_after, ingestion_rate, ingestion_burst)
if limit_requests then
  expire_ms = math.max(expire_ms, full_in_ms(req_after, request_rate, request_burst))
  redis.call('HSET', KEYS[2], 'rt', fmt(req_after), 'ru', now_s, 'it', fmt(item_after), 'iu', now_s)
else
  redis.call('HSET', KEYS[2], 'it', fmt(item_after), 'iu', now_s)
end
redis.call('PEXPIRE', KEYS[2], expire_ms)

return {1, 'allowed', fmt(req_after), fmt(item_after), 0, now, expire_ms,
  limits_reply[1], limits_reply[2], limits_reply[3], limits_reply[4], limits_reply[5], override}
