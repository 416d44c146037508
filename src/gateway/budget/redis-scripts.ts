/**
 * The Redis ledger's Lua scripts. Each runs atomically: no other client's command runs between its first and last
 * line, which is what makes check-and-reserve one step across replicas.
 *
 * Data, all under one key prefix with a Redis Cluster hash tag (see redis-ledger.ts), so every key a script touches
 * is in one slot:
 * - `spent:<scope>:<period>`, `reserved:<scope>:<period>`: integer micro-dollars, expiring a week after the period;
 * - `reservations`: a sorted set of open reservation ids scored by expiry, and `reservation-records`: a hash of
 *   id → "<amount> <reserved key> <reserved key> ...". RESERVE and SPENT first sweep the expired ones, giving their
 *   amounts back, so a gateway that died mid-request holds budget only until its reservations expire;
 * - `applied:<replica>`: the highest spend sequence number applied from that replica (see RECORD);
 * - `replicas`: a sorted set of replica ids scored by the expiry of their last heartbeat.
 *
 * Requires Redis 7.0 (PEXPIRETIME). Expiry times come from the callers' clocks, which NTP keeps within far less than
 * the margins used here.
 */

const HELPERS = `
-- Pushes a key's expiry out to \`at\`, never in: several writers share the key, each knowing only its own need.
local function extend(key, at)
  if redis.call('PEXPIRETIME', key) < tonumber(at) then redis.call('PEXPIREAT', key, at) end
end

-- Gives an open reservation's amount back to its reserved counters and forgets it. The record names the counters;
-- they share the hash tag, so they are in this slot even though the script was not given them as keys.
local function release(zset, hash, id)
  local record = redis.call('HGET', hash, id)
  if record then
    local amount
    for part in string.gmatch(record, '%S+') do
      if amount == nil then
        amount = part
      elseif redis.call('EXISTS', part) == 1 then
        redis.call('DECRBY', part, amount)
      end
    end
    redis.call('HDEL', hash, id)
  end
  redis.call('ZREM', zset, id)
end

-- Releases reservations that expired unsettled. Bounded per call; more wait for the next call, meanwhile erring on
-- the side of holding budget.
local function sweep(zset, hash, now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 1000)) do
    release(zset, hash, id)
  end
end
`;

/**
 * Check and reserve, all or nothing.
 * KEYS: reservations, reservation-records, then per window: spent, reserved.
 * ARGV: now, id, amount, expiresAt, force ('1': hold without checking, for a reservation already granted by the
 * resilient ledger's local share), recordsExpireAt, then per window: limit ('' for none), countersExpireAt.
 * Returns {1} or {0}, followed by spent and reserved per window as they were before this reservation; a repeated
 * hand-over returns {1} alone.
 */
export const RESERVE = `${HELPERS}
local zset, hash = KEYS[1], KEYS[2]
-- Amounts stay strings for INCRBY: Lua would print a number of 15 digits or more in exponent form.
local now, id, amount, expiresAt, force = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
sweep(zset, hash, now)
-- Handing over a reservation twice (a retry after a lost reply) must not hold its amount twice.
if force and redis.call('HEXISTS', hash, id) == 1 then return {1} end
local windows = (#KEYS - 2) / 2
local result, states = {1}, {}
for i = 1, windows do
  local spent = tonumber(redis.call('GET', KEYS[1 + 2 * i]) or '0')
  local reserved = tonumber(redis.call('GET', KEYS[2 + 2 * i]) or '0')
  local limit = ARGV[5 + 2 * i]
  if not force and limit ~= '' and spent + reserved + tonumber(amount) > tonumber(limit) then result[1] = 0 end
  states[#states + 1] = spent
  states[#states + 1] = reserved
end
for _, value in ipairs(states) do result[#result + 1] = value end
if result[1] == 0 then return result end
local record = {amount}
for i = 1, windows do
  local key = KEYS[2 + 2 * i]
  redis.call('INCRBY', key, amount)
  extend(key, ARGV[6 + 2 * i])
  record[#record + 1] = key
end
redis.call('HSET', hash, id, table.concat(record, ' '))
redis.call('ZADD', zset, expiresAt, id)
extend(hash, ARGV[6])
extend(zset, ARGV[6])
return result
`;

/**
 * Records one settled spend: releases its reservation (if still open) and adds the amount to each spent counter.
 * Spend carries a per-replica sequence number, and the script applies only numbers above the highest applied: a
 * settle whose reply was lost (Redis died after applying it) and that is replayed later is not counted twice.
 * Redis executes one connection's commands in order, and a replica replays its unconfirmed spend in sequence order
 * before sending anything new, so what was applied is always every number up to the highest.
 * KEYS: reservations, reservation-records, applied:<replica>, then the spent counters.
 * ARGV: reservation id, amount, sequence, appliedExpireAt, then per spent counter: its expireAt.
 * Returns {0} when already applied, else {1} followed by each counter's new total.
 */
export const RECORD = `${HELPERS}
local zset, hash, applied = KEYS[1], KEYS[2], KEYS[3]
local id, amount, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
if seq <= tonumber(redis.call('GET', applied) or '0') then return {0} end
redis.call('SET', applied, ARGV[3], 'PXAT', ARGV[4])
release(zset, hash, id)
local result = {1}
for i = 4, #KEYS do
  result[#result + 1] = redis.call('INCRBY', KEYS[i], amount)
  extend(KEYS[i], ARGV[i + 1])
end
return result
`;

/**
 * KEYS: reservations, reservation-records, spent today, spent this month, reserved today. ARGV: now.
 * Returns the three counters, after sweeping expired reservations so the reserved amount is current.
 */
export const SPENT = `${HELPERS}
sweep(KEYS[1], KEYS[2], ARGV[1])
return {tonumber(redis.call('GET', KEYS[3]) or '0'), tonumber(redis.call('GET', KEYS[4]) or '0'), tonumber(redis.call('GET', KEYS[5]) or '0')}
`;

/**
 * Registers a replica as live until `expiresAt` and counts the live ones.
 * KEYS: replicas. ARGV: now, replica id, expiresAt. Returns the number of live replicas.
 */
export const HEARTBEAT = `${HELPERS}
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
extend(KEYS[1], ARGV[3])
return redis.call('ZCARD', KEYS[1])
`;
