/**
 * The rate limiter's one Lua script, ADMIT: corrections, provider holds and an admission for one limiter (a provider
 * or a client) in one atomic step and one round trip.
 *
 * Each bucket is a GCRA cell: one number, the time at which the bucket will be full again (its "theoretical arrival
 * time", `tat`). A bucket of `capacity` units refilling one unit every `per` milliseconds holds
 * capacity − (tat − now) / per units now, or all of them when tat ≤ now; taking `n` units adds n × per to tat. This
 * is exactly the in-process limiter's token bucket (limiter.ts), kept as one number, so it needs no refill step and
 * expires by itself: a key lives until its bucket is full again.
 *
 * Admission schedules rather than polls: the script finds the earliest time both buckets have room for the request
 * (`wait` from now), and if that is within what the caller will wait it takes the units at that time and says so.
 * The caller then waits out `wait` locally and sends, with no second round trip. Replicas' requests are thus ordered
 * by when they reached Redis, and one replica's by the order it sent them (Redis runs one connection's commands in
 * order), which is the FIFO order of its queue.
 *
 * Time is Redis's (`TIME`), so replicas' clocks do not matter. Requires Redis 5 or later (scripts replicated by
 * their effects, which `TIME` needs).
 *
 * KEYS: the requests bucket, the tokens bucket (both always given; a bucket without a limit has per = 0 and is left
 * alone). They share the route environment's hash tag, so a Redis Cluster has both in one slot.
 *
 * ARGV, per bucket i = 1 (requests), 2 (tokens):
 * - ARGV[i], ARGV[2 + i]: milliseconds per unit (0: no limit) and capacity;
 * - ARGV[4 + i]: a charge applied first: what settles found the estimates were off by, what a local share admitted
 *   while Redis was away (may be negative: units given back, never beyond a full bucket);
 * - ARGV[6 + i]: a hold: the bucket may be full no earlier than this many milliseconds from now (0: none). Only
 *   raises tat, so a hold can only lower what the bucket holds;
 * - ARGV[8 + i]: units to admit;
 * then ARGV[11]: the longest wait the caller accepts, in milliseconds; negative: apply charges and holds, admit nothing.
 *
 * Reply: { admitted (1 yes, 0 no, -1 nothing asked), wait in ms (rounded up), per bucket the milliseconds until it
 * is full again (rounded up; 0 when full): what a replica last saw of the shared buckets, for its local share; then
 * per bucket 1 when its hold lowered it, else 0 }. A hold often changes nothing: what a provider no longer has is
 * mostly what the replicas took, which the bucket has counted already.
 */
export const ADMIT = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local per, capacity, tat, held = {}, {}, {}, {0, 0}
for i = 1, 2 do
  per[i] = tonumber(ARGV[i])
  capacity[i] = tonumber(ARGV[2 + i])
  if per[i] > 0 then
    local t = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now) + tonumber(ARGV[4 + i]) * per[i]
    local hold = tonumber(ARGV[6 + i])
    if hold > 0 and now + hold > t then held[i] = 1 end
    tat[i] = math.max(t, now + hold)
  end
end

local wait = 0
for i = 1, 2 do
  if per[i] > 0 then
    -- A request larger than the whole bucket waits for a full bucket, not forever.
    local need = math.min(tonumber(ARGV[8 + i]), capacity[i])
    wait = math.max(wait, tat[i] - now - (capacity[i] - need) * per[i])
  end
end

local admitted = -1
local longest = tonumber(ARGV[11])
if longest >= 0 then
  admitted = 0
  if wait <= longest then
    admitted = 1
    for i = 1, 2 do
      if per[i] > 0 then tat[i] = math.max(tat[i], now + wait) + tonumber(ARGV[8 + i]) * per[i] end
    end
  end
end

local ahead = {0, 0}
for i = 1, 2 do
  if per[i] > 0 then
    if tat[i] > now then
      ahead[i] = math.ceil(tat[i] - now)
      redis.call('SET', KEYS[i], string.format('%.3f', tat[i]), 'PX', ahead[i] + 1000)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return {admitted, math.ceil(wait), ahead[1], ahead[2], held[1], held[2]}
`;
