-- One atomic decision for one write, in Mimir's order: request rate, then HA dedupe (an HA pair's
-- non-elected replica costs a request and no items), then the ingestion rate; each bucket with
-- Mimir's token bucket semantics (golang.org/x/time/rate AllowN). The pure-Python model is
-- services/mimir_edge/core/admission.py (token_bucket.py, ha_tracker.py); every float operation
-- happens in the same order in both, and the same scenario tables run against both.
--
-- KEYS[1]  the tenant's limits hash (written by overrides-sync), same hash tag as KEYS[2]
-- KEYS[2]  the tenant's bucket hash (written only here): rt/ru = request tokens/updated,
--          it/iu = item tokens/updated (microseconds)
-- KEYS[3]  the tenant's emergency override (written by the admin API, expires by its TTL):
--          any limit field it holds replaces the one from KEYS[1]; mode = enforce | shadow
-- KEYS[4]  the tenant's HA tracker hash: field = cluster, value = "<last seen us> <failovers> <replica>"
--          (written only here, when the tenant has accept_ha_samples)
-- ARGV     requests, items (samples + histograms + metadata),
--          default request_rate, request_burst, ingestion_rate, ingestion_burst,
--          max_idle_ms, now_us ('' = Redis TIME),
--          exemplars, default max_global_exemplars_per_user, accept_ha_samples ('1'|'0'),
--          ha_cluster_label, ha_replica_label, ha_max_clusters, ha_tracker_failover_timeout (s),
--          ha_forget_ms, default otel_convert_histograms_to_nhcb ('1'|'0'), default
--          otel_native_delta_ingestion ('1'|'0'), then an OTLP write's other counts ('' for
--          remote_write): items with nhcb, items with native delta, items with both, exemplars with
--          native delta; then the first series' labels as name, value, name, value, ...
-- Returns  {allowed 0|1, reason, remaining requests, remaining items, retry_after_us (-1 = never),
--           now_us, expire_ms, request_rate, request_burst, ingestion_rate, ingestion_burst,
--           tenant_limits 0|1, override mode ('' = no override), ha outcome, items charged,
--           elected replica, then the HA and exemplar limits that applied: max exemplars, accept_ha 0|1,
--           cluster label, replica label, max clusters, failover timeout (us), otel nhcb 0|1,
--           otel native delta 0|1};
--           floats as "%.17g" strings, which round-trip exactly.

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

local l = redis.call('HMGET', KEYS[1], 'request_rate', 'request_burst', 'ingestion_rate', 'ingestion_burst',
  'max_global_exemplars_per_user', 'accept_ha_samples', 'ha_cluster_label', 'ha_replica_label', 'ha_max_clusters',
  'ha_tracker_failover_timeout', 'otel_convert_histograms_to_nhcb', 'otel_native_delta_ingestion')
local tenant_limits = l[3] ~= false
local request_rate = tonumber(l[1]) or tonumber(ARGV[3])
local request_burst = tonumber(l[2]) or tonumber(ARGV[4])
local ingestion_rate = tonumber(l[3]) or tonumber(ARGV[5])
local ingestion_burst = tonumber(l[4]) or tonumber(ARGV[6])
local max_exemplars = tonumber(l[5]) or tonumber(ARGV[10])
local accept_ha = (l[6] or ARGV[11]) == '1'
local ha_cluster_label = l[7] or ARGV[12]
local ha_replica_label = l[8] or ARGV[13]
local ha_max_clusters = tonumber(l[9]) or tonumber(ARGV[14])
local ha_failover_us = math.floor((tonumber(l[10]) or tonumber(ARGV[15])) * MICROS + 0.5)
local ha_forget_ms = tonumber(ARGV[16])
local otel_nhcb = (l[11] or ARGV[17]) == '1'
local otel_native_delta = (l[12] or ARGV[18]) == '1'
local exemplars = tonumber(ARGV[9])

-- An OTLP write was counted under every setting that changes its cost (core/otlp.py): the
-- tenant's limits pick one, here, in the same call that charges it.
if ARGV[19] ~= '' then
  if otel_native_delta then
    items = tonumber(otel_nhcb and ARGV[21] or ARGV[20])
    exemplars = tonumber(ARGV[22])
  elseif otel_nhcb then
    items = tonumber(ARGV[19])
  end
end

-- Mimir clears exemplars for a tenant that keeps none, and charges nothing for a request without
-- samples, histograms or metadata (prePushValidationMiddleware).
if max_exemplars > 0 and items > 0 then
  items = items + exemplars
end

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

-- Mimir: request burst 0 is a burst of MaxInt (requestRateStrategy), so no limit either.
local limit_requests = request_rate > 0 and request_burst > 0
local req_tokens, req_ok, req_over, req_after, req_wait = 0, true, false, 0, 0
if limit_requests then
  req_tokens = refill(b[1], b[2], request_rate, request_burst)
  req_ok, req_over, req_after, req_wait = check(req_tokens, request_rate, request_burst, requests)
end
local item_tokens = refill(b[3], b[4], ingestion_rate, ingestion_burst)

local function reply(allowed, reason, rem_req, rem_items, wait, expire_ms, ha, charged, elected)
  return {allowed, reason, fmt(rem_req), fmt(rem_items), wait, now, expire_ms,
    fmt(request_rate), request_burst, fmt(ingestion_rate), ingestion_burst, tenant_limits and 1 or 0, override,
    ha, charged, elected, max_exemplars, accept_ha and 1 or 0, ha_cluster_label, ha_replica_label, ha_max_clusters,
    ha_failover_us, otel_nhcb and 1 or 0, otel_native_delta and 1 or 0}
end

if not req_ok then
  -- A request refused at the request rate consumes nothing and writes nothing.
  return reply(0, req_over and 'request_burst' or 'request_rate', req_tokens, item_tokens, req_wait, 0, 'not_ha', items, '')
end

-- HA dedupe (Mimir's findHALabels + checkReplica): the first series' labels, both non-empty.
local ha, elected = 'not_ha', ''
local cluster, replica = '', ''
if accept_ha then
  for i = 23, #ARGV - 1, 2 do
    if ARGV[i] == ha_cluster_label then
      cluster = ARGV[i + 1]
    elseif ARGV[i] == ha_replica_label then
      replica = ARGV[i + 1]
    end
  end
end
if cluster ~= '' and replica ~= '' then
  local stored = redis.call('HGET', KEYS[4], cluster)
  local seen, failovers, current
  if stored then
    local s, f, r = string.match(stored, '^(%d+) (%d+) (.*)$')
    seen, failovers, current = tonumber(s), tonumber(f), r
    if seen < now - ha_forget_ms * 1000 then
      stored = false -- forgotten: a new cluster again
    end
  end
  if not stored then
    local clusters = redis.call('HLEN', KEYS[4])
    if ha_max_clusters > 0 and clusters >= ha_max_clusters then
      -- Forget clusters silent for ha_forget_ms before refusing a new one (Mimir's cleanup).
      local all = redis.call('HGETALL', KEYS[4])
      local oldest = now - ha_forget_ms * 1000
      for i = 1, #all, 2 do
        if tonumber(string.match(all[i + 1], '^(%d+) ')) < oldest then
          redis.call('HDEL', KEYS[4], all[i])
          clusters = clusters - 1
        end
      end
    end
    if ha_max_clusters > 0 and clusters >= ha_max_clusters then
      return reply(0, 'ha_max_clusters', req_tokens, item_tokens, NEVER, 0, 'too_many_clusters', items, '')
    end
    ha, elected, failovers = 'elected', replica, 0
  elseif current == replica then
    ha, elected = 'elected', replica
  elseif now - seen >= ha_failover_us then
    ha, elected, failovers = 'failover', replica, failovers + 1
  else
    ha, elected = 'non_elected', current
    items = 0
  end
  if ha ~= 'non_elected' then
    -- Written even when the ingestion rate then refuses the request, as in Mimir.
    redis.call('HSET', KEYS[4], cluster, string.format('%d %d ', now, failovers) .. replica)
    redis.call('PEXPIRE', KEYS[4], ha_forget_ms)
  end
end

local item_ok, item_over, item_after, item_wait = check(item_tokens, ingestion_rate, ingestion_burst, items)
if not item_ok then
  return reply(0, item_over and 'ingestion_burst' or 'ingestion_rate', req_tokens, item_tokens, item_wait, 0, ha,
    items, elected)
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

return reply(1, 'allowed', req_after, item_after, 0, expire_ms, ha, items, elected)
