/**
 * Rate limits shared through a real redis-server by two limiters, each with its own store and connection, as two
 * gateway replicas have. Admissions are counted, never timed tightly: a limiter may admit late on a loaded machine,
 * never early, so every check is a bound on how many were admitted by some time since a moment before the first.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { connectBudgetRedis } from '../../../src/gateway/budget/redis-client.js';
import { LimiterError, type OnHold, type ProviderLimits, type Reservation } from '../../../src/gateway/limiter.js';
import { SharedLimiter } from '../../../src/gateway/rate-limit/shared-limiter.js';
import { RateLimitStore } from '../../../src/gateway/rate-limit/store.js';
import { waitFor } from '../../support/poll.js';
import { startRedis, type RedisServer } from '../../support/redis.js';

const ROUTE = { name: 'chat', namespace: 'test', environment: 'prod' };
const headers = (values: Record<string, string>) => ({ get: (name: string) => values[name] ?? null });

let server: RedisServer;
/** Whether a test killed the server and has not started it again (a failed test leaves that to afterEach). */
let down = false;
let inspect: Redis;
let opened: { redis: Redis; store: RateLimitStore }[] = [];

async function killRedis(): Promise<void> {
  down = true;
  await server.kill();
}

async function restartRedis(): Promise<void> {
  await server.start();
  down = false;
}

beforeAll(async () => {
  server = await startRedis();
});
afterEach(async () => {
  for (const { store } of opened) store.close();
  opened = [];
  if (down) await restartRedis();
  if (server) {
    if (inspect.status !== 'ready') await waitFor(() => inspect.status === 'ready', { message: 'the inspecting client reconnected', intervalMs: 10, timeoutMs: 15_000 });
    await inspect.flushall();
  }
});
afterAll(async () => {
  inspect?.disconnect();
  await server?.stop();
});

async function connected(): Promise<Redis> {
  const redis = connectBudgetRedis(server.url, { retryStrategy: () => 50 });
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return redis;
}

beforeAll(async () => {
  inspect = await connected();
});

interface Replica {
  redis: Redis;
  store: RateLimitStore;
  limiter: SharedLimiter;
  degraded: boolean[];
  /** Each hold the limiter reported: unit and reason. */
  holds: string[];
}

/** One gateway replica's view: its own connection and store, and a limiter named like a provider's. */
async function replica(limits: ProviderLimits, replicas = 2): Promise<Replica> {
  const redis = await connected();
  const degraded: boolean[] = [];
  const holds: string[] = [];
  const store = new RateLimitStore({ redis, route: ROUTE, probeMs: 50, onDegraded: (value) => degraded.push(value) });
  opened.push({ redis, store });
  const onHold: OnHold = (unit, hold) => holds.push(`${unit} ${hold.reason}`);
  return { redis, store, degraded, holds, limiter: new SharedLimiter({ store, name: 'provider:openai', limits, replicas: () => replicas, onHold }) };
}

/** `count` requests at once through `limiter`; resolves with when each was admitted, or its error. */
function burst(limiter: SharedLimiter, count: number, tokens = 1): Promise<(number | unknown)[]> {
  return Promise.all(Array.from({ length: count }, () => limiter.acquire({ tokens }).then(() => Date.now(), (error: unknown) => error)));
}

/**
 * Whether `admitted` (times) never exceeds a bucket of `capacity` refilled at `perSecond` from `start`: by each
 * time t, at most capacity + perSecond × (t − start) admissions, plus one for millisecond rounding.
 */
function withinRate(admitted: readonly number[], start: number, capacity: number, perSecond: number): { ok: boolean; worst: string } {
  const sorted = [...admitted].sort((a, b) => a - b);
  let worst = '';
  let ok = true;
  sorted.forEach((at, i) => {
    const allowed = capacity + (perSecond * (at - start)) / 1000 + 1;
    if (i + 1 > allowed) {
      ok = false;
      worst ||= `${i + 1} admitted by ${at - start} ms, at most ${allowed.toFixed(1)} allowed`;
    }
  });
  return { ok, worst };
}

const times = (results: readonly unknown[]) => results.filter((r): r is number => typeof r === 'number');

describe('SharedLimiter with Redis', () => {
  it('keeps two replicas together under the requests per minute while a 10× burst waits instead of failing', async () => {
    // 600 a minute: 10 a second, 10 at once. The burst is 100: ten times what a second allows.
    const [a, b] = await Promise.all([replica({ requestsPerMinute: 600 }), replica({ requestsPerMinute: 600 })]);
    const start = Date.now();
    const results = (await Promise.all([burst(a.limiter, 50), burst(b.limiter, 50)])).flat();
    const admitted = times(results);
    expect(results.filter((r) => typeof r !== 'number')).toEqual([]);
    expect(admitted).toHaveLength(100);
    expect(withinRate(admitted, start, 10, 10)).toEqual({ ok: true, worst: '' });
    // Each replica alone would have let 10 through at once and 10 a second on top: 20 at once together.
    expect(a.degraded).toEqual([]);
    expect(b.degraded).toEqual([]);
  }, 30_000);

  it('refuses at once what cannot be admitted within the longest wait, with the wait as retry-after', async () => {
    const a = await replica({ requestsPerMinute: 6 });
    await a.limiter.acquire({ tokens: 1 });
    const error = await a.limiter.acquire({ tokens: 1, deadlineMs: Date.now() + 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LimiterError);
    expect((error as LimiterError).code).toBe('queue_timeout');
    // The next request is due 10 s after the first, less the time since.
    expect((error as LimiterError).retryAfterMs).toBeLessThanOrEqual(10_000);
    expect(a.limiter.queueDepth()).toBe(0);
  });

  it('refuses a request beyond the local queue without asking Redis', async () => {
    const replicaA = await replica({ requestsPerMinute: 60 });
    const limiter = new SharedLimiter({ store: replicaA.store, name: 'client:web', limits: { requestsPerMinute: 60 }, replicas: () => 1, maxQueue: 2 });
    const waiting = [limiter.acquire({ tokens: 1 }), limiter.acquire({ tokens: 1 })];
    const error = await limiter.acquire({ tokens: 1 }).catch((e: unknown) => e);
    expect((error as LimiterError).code).toBe('queue_full');
    expect(limiter.queueDepth()).toBe(2);
    await Promise.all(waiting);
    expect(limiter.queueDepth()).toBe(0);
  });

  it('applies settles on the next admission: a refund lets another replica in at once', async () => {
    // 60,000 tokens a minute, all of it at once.
    const [a, b] = await Promise.all([replica({ tokensPerMinute: 60_000 }), replica({ tokensPerMinute: 60_000 })]);
    const big = await a.limiter.acquire({ tokens: 50_000 });
    a.limiter.settle(big, 1000);
    // B cannot have 40,000 of the 10,000 left until A's next admission carries the refund.
    const refused = await b.limiter.acquire({ tokens: 40_000, deadlineMs: Date.now() + 200 }).catch((e: unknown) => e);
    expect((refused as LimiterError).code).toBe('queue_timeout');
    await a.limiter.acquire({ tokens: 1 });
    await expect(b.limiter.acquire({ tokens: 40_000, deadlineMs: Date.now() + 200 })).resolves.toMatchObject({ tokens: 40_000 });
  });

  it('gives an aborted waiter\'s units back', async () => {
    const a = await replica({ tokensPerMinute: 60_000 });
    await a.limiter.acquire({ tokens: 60_000 });
    const controller = new AbortController();
    const waiting = a.limiter.acquire({ tokens: 5000, signal: controller.signal }); // due in 5 s
    await waitFor(() => a.limiter.queueDepth() === 1, { message: 'the request waits for its time', intervalMs: 10, timeoutMs: 15_000 });
    await sleep(50);
    controller.abort(new Error('client left'));
    await expect(waiting).rejects.toThrow('client left');
    expect(a.limiter.queueDepth()).toBe(0);
    // The next admission gives the 5,000 back before it decides: a request needing no more than a full bucket's
    // worth beyond the first 60,000 goes at once, where it would have waited for the aborted one's 5 s.
    await expect(a.limiter.acquire({ tokens: 0, deadlineMs: Date.now() + 1000 })).resolves.toMatchObject({ tokens: 0 });
  });

  it('holds every replica back when one sees the provider ask to wait', async () => {
    const [a, b] = await Promise.all([replica({ requestsPerMinute: 600 }), replica({ requestsPerMinute: 600 })]);
    a.limiter.observe(headers({ 'retry-after': '3', 'x-ratelimit-remaining-requests': '0' }));
    // A's hold went out on A's connection; a command after it on the same connection runs after it.
    await a.redis.ping();
    const error = await b.limiter.acquire({ tokens: 1, deadlineMs: Date.now() + 500 }).catch((e: unknown) => e);
    expect((error as LimiterError).code).toBe('queue_timeout');
    // Empty for 3 s, then one request's refill (100 ms), less what passed since. Unheld, B would have gone at once.
    expect((error as LimiterError).retryAfterMs).toBeGreaterThan(1000);
    expect((error as LimiterError).retryAfterMs).toBeLessThanOrEqual(3100);
    expect(a.holds).toEqual(['requests retry_after']);
    expect(b.holds).toEqual([]);
  });

  it('reports no hold when the shared bucket already holds no more than the provider has left', async () => {
    const [a, b] = await Promise.all([replica({ tokensPerMinute: 60_000 }), replica({ tokensPerMinute: 60_000 })]);
    await b.limiter.acquire({ tokens: 30_000 });
    // Below the bucket's 60,000, above the 30,000 it holds since B's request: the hold goes out and changes nothing.
    a.limiter.observe(headers({ 'x-ratelimit-remaining-tokens': '50000' }));
    await a.redis.ping();
    expect(a.holds).toEqual([]);
    // Below what the bucket holds: it lowers it, and says so.
    a.limiter.observe(headers({ 'x-ratelimit-remaining-tokens': '10000' }));
    await waitFor(() => a.holds.length > 0, { message: 'the hold was reported', intervalMs: 10, timeoutMs: 15_000 });
    expect(a.holds).toEqual(['tokens remaining']);
    await expect(b.limiter.acquire({ tokens: 20_000, deadlineMs: Date.now() + 300 })).rejects.toMatchObject({ code: 'queue_timeout' });
  });

  it('ignores provider headers that leave more than the limit allows', async () => {
    const [a, b] = await Promise.all([replica({ requestsPerMinute: 60 }), replica({ requestsPerMinute: 60 })]);
    a.limiter.observe(headers({ 'x-ratelimit-remaining-requests': '400', 'x-ratelimit-limit-requests': '400', 'x-ratelimit-reset-requests': '150ms' }));
    await a.redis.ping();
    await expect(b.limiter.acquire({ tokens: 1, deadlineMs: Date.now() + 200 })).resolves.toMatchObject({ tokens: 1 });
    expect(a.holds).toEqual([]);
  });
});

describe('SharedLimiter when Redis goes away', () => {
  it('falls back to limit / replicas on each replica, then goes back to the shared buckets', async () => {
    const limits = { requestsPerMinute: 600 }; // 10 a second together: 5 a second, 5 at once, per replica
    const [a, b] = await Promise.all([replica(limits), replica(limits)]);
    await Promise.all([a.limiter.acquire({ tokens: 1 }), b.limiter.acquire({ tokens: 1 })]);
    await killRedis();
    const start = Date.now();
    const [fromA, fromB] = await Promise.all([burst(a.limiter, 20), burst(b.limiter, 20)]);
    // Every request waited its turn on the local share; none failed.
    expect([...fromA, ...fromB].filter((r) => typeof r !== 'number')).toEqual([]);
    expect(withinRate(times(fromA), start, 5, 5)).toEqual({ ok: true, worst: '' });
    expect(withinRate(times(fromB), start, 5, 5)).toEqual({ ok: true, worst: '' });
    expect(withinRate([...times(fromA), ...times(fromB)], start, 10, 10)).toEqual({ ok: true, worst: '' });
    expect(a.degraded).toEqual([true]);
    expect(b.degraded).toEqual([true]);

    await restartRedis();
    await waitFor(() => !a.store.degraded && !b.store.degraded, { message: 'both stores found Redis again', intervalMs: 10, timeoutMs: 15_000 });
    expect(a.degraded).toEqual([true, false]);
    await inspect.ping().catch(() => undefined);
    await waitFor(() => inspect.status === 'ready', { message: 'the inspecting client reconnected', intervalMs: 10, timeoutMs: 15_000 });
    await a.limiter.acquire({ tokens: 1 });
    expect(await inspect.exists('llmroute:{test/chat/prod}:ratelimit:provider:openai:requests')).toBe(1);
  }, 30_000);

  it('hands over what a local share took during the outage, and only that', async () => {
    // 60,000 tokens a minute: 30,000 per replica while Redis is away, refilling at 500 a second.
    const limits = { tokensPerMinute: 60_000 };
    const [a, b] = await Promise.all([replica(limits), replica(limits)]);
    const before: Reservation = await a.limiter.acquire({ tokens: 1 });
    expect(before.tokens).toBe(1);
    await killRedis();
    await a.limiter.acquire({ tokens: 20_000 }); // fails over to A's local share, which admits it at once
    expect(a.store.degraded).toBe(true);
    await restartRedis();
    await waitFor(() => !a.store.degraded, { message: 'A found Redis again', intervalMs: 10, timeoutMs: 15_000 });
    await waitFor(() => b.redis.status === 'ready', { message: 'B reconnected', intervalMs: 10, timeoutMs: 15_000 });
    // A's next admission hands its 20,000 (less a few seconds' refill) over to Redis.
    await a.limiter.acquire({ tokens: 1 });
    // Without the hand-over Redis would have 60,000 for B; with it, well under 45,000.
    const error = await b.limiter.acquire({ tokens: 45_000, deadlineMs: Date.now() + 300 }).catch((e: unknown) => e);
    expect((error as LimiterError).code).toBe('queue_timeout');
    // Nothing counted twice: the 20,000, less what refilled, is all that was added, so 30,000 fits (twice, it would not).
    await expect(b.limiter.acquire({ tokens: 30_000, deadlineMs: Date.now() + 300 })).resolves.toMatchObject({ tokens: 30_000 });
    expect(b.degraded).toEqual([]);
  }, 30_000);
});
