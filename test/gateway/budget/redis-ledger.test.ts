import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Budget } from '../../../src/api/schema.js';
import { windowSpecs } from '../../../src/gateway/budget/decide.js';
import type { BudgetScope, ThresholdCrossing } from '../../../src/gateway/budget/ledger.js';
import { connectBudgetRedis } from '../../../src/gateway/budget/redis-client.js';
import { RedisLedger, type RedisLedgerOptions } from '../../../src/gateway/budget/redis-ledger.js';
import { startRedis, type RedisServer } from '../../support/redis.js';

const budget = (fields: Partial<Budget>): Budget => ({ alertAt: [0.8], onExhausted: 'reject', ...fields });
const environment = (fields: Partial<Budget>): BudgetScope => ({ id: 'environment', budget: budget(fields) });
// Near the real time: Redis expires keys by its own clock, at times computed from the callers'.
const now = Date.now();

let server: RedisServer;
const clients: Redis[] = [];

async function client(): Promise<Redis> {
  const redis = connectBudgetRedis(server.url);
  clients.push(redis);
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return redis;
}

/** A replica's ledger on its own connection, for a route of its own so tests do not share keys. */
async function replica(route: string, options: Partial<RedisLedgerOptions> = {}): Promise<RedisLedger> {
  return new RedisLedger({ redis: await client(), route: { namespace: 'team-a', name: route, environment: 'prod' }, ...options });
}

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  for (const redis of clients) redis.disconnect();
  await server?.stop();
});

describe('RedisLedger', () => {
  it('holds a small budget under 200 concurrent requests from two replicas', async () => {
    const route = randomUUID();
    const replicas = [await replica(route), await replica(route)];
    const scopes = [environment({ daily: 1 })];
    const worst = 0.02;
    let settledMicros = 0;
    let admitted = 0;
    let refused = 0;
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const ledger = replicas[i % 2]!;
        await sleep(Math.random() * 40);
        const result = await ledger.reserve(scopes, worst, now);
        if (!result.ok) {
          refused++;
          return;
        }
        admitted++;
        await sleep(Math.random() * 5);
        const actualMicros = 5000 + Math.floor(Math.random() * 15_001);
        await ledger.settle(result.reservation, actualMicros / 1e6, now);
        settledMicros += actualMicros;
      }),
    );
    expect(settledMicros).toBeLessThanOrEqual(1_000_000);
    expect(admitted).toBeGreaterThanOrEqual(50);
    expect(refused).toBeGreaterThan(0);
    // Both replicas see one total, to the micro-dollar.
    for (const ledger of replicas) expect(await ledger.spent(scopes[0]!, now)).toEqual({ dailyUSD: settledMicros / 1e6, monthlyUSD: settledMicros / 1e6, reservedUSD: 0 });
  });

  it('keeps spend across a restart of the gateway', async () => {
    const route = randomUUID();
    const scope = environment({ daily: 1 });
    const before = await replica(route);
    const result = await before.reserve([scope], 0.5, now);
    if (!result.ok) throw new Error('refused');
    await before.settle(result.reservation, 0.4, now);
    const after = await replica(route);
    expect(await after.spent(scope, now)).toEqual({ dailyUSD: 0.4, monthlyUSD: 0.4, reservedUSD: 0 });
    const refused = await after.reserve([scope], 0.7, now);
    expect(refused.ok === false && refused.exceeded).toMatchObject({ scope: 'environment', window: 'daily', limitUSD: 1, spentUSD: 0.4 });
  });

  it('stops holding budget for a reservation that is never settled once it expires', async () => {
    const route = randomUUID();
    const scope = environment({ daily: 1 });
    const crashed = await replica(route);
    expect((await crashed.reserve([scope], 0.9, now, 60_000)).ok).toBe(true);
    const survivor = await replica(route);
    expect((await survivor.reserve([scope], 0.2, now + 30_000)).ok).toBe(false);
    expect(await survivor.spent(scope, now + 30_000)).toMatchObject({ reservedUSD: 0.9 });
    expect(await survivor.spent(scope, now + 60_001)).toMatchObject({ reservedUSD: 0 });
    expect((await survivor.reserve([scope], 0.2, now + 60_001)).ok).toBe(true);
  });

  it('records each spend once, however often it is sent, and never out of order', async () => {
    const route = randomUUID();
    const scope = environment({ daily: 10 });
    const ledger = await replica(route);
    const reserve = async () => {
      const result = await ledger.reserve([scope], 1, now);
      if (!result.ok) throw new Error('refused');
      return result.reservation;
    };
    const first = ledger.spendEntry(await reserve(), 0.5);
    const second = ledger.spendEntry(await reserve(), 0.25);
    await ledger.record(first, now);
    await ledger.record(first, now);
    expect(await ledger.spent(scope, now)).toEqual({ dailyUSD: 0.5, monthlyUSD: 0.5, reservedUSD: 1 });
    await ledger.record(second, now);
    expect(await ledger.spent(scope, now)).toEqual({ dailyUSD: 0.75, monthlyUSD: 0.75, reservedUSD: 0 });
    // Numbers below the highest applied are taken as applied: why spend must reach Redis in order.
    await ledger.record(first, now);
    expect((await ledger.spent(scope, now)).dailyUSD).toBe(0.75);
  });

  it('holds an already granted reservation without checking limits, once however often it is handed over', async () => {
    const route = randomUUID();
    const scope = environment({ daily: 1 });
    const ledger = await replica(route);
    // Granted elsewhere (the resilient ledger's local share) beyond what Redis would allow.
    const withWindows = { id: randomUUID(), amountMicros: 1_500_000, expiresAt: now + 60_000, windows: windowSpecs([scope], now) };
    expect(await ledger.replay([withWindows], [], now)).toEqual({ held: [undefined], recorded: [] });
    expect(await ledger.replay([withWindows], [], now)).toEqual({ held: [undefined], recorded: [] });
    expect(await ledger.spent(scope, now)).toMatchObject({ reservedUSD: 1.5 });
    await ledger.record(ledger.spendEntry(withWindows, 1.2), now);
    expect(await ledger.spent(scope, now)).toEqual({ dailyUSD: 1.2, monthlyUSD: 1.2, reservedUSD: 0 });
  });

  it('reports each alertAt fraction once, whichever replica crosses it', async () => {
    const route = randomUUID();
    const crossings: ThresholdCrossing[] = [];
    const onThreshold = (crossing: ThresholdCrossing) => crossings.push(crossing);
    const replicas = [await replica(route, { onThreshold }), await replica(route, { onThreshold })];
    const scopes = [environment({ daily: 1, alertAt: [0.5, 0.9] })];
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const ledger = replicas[i % 2]!;
        const result = await ledger.reserve(scopes, 0.025, now);
        if (!result.ok) throw new Error('refused');
        await ledger.settle(result.reservation, 0.025, now);
      }),
    );
    expect(crossings.map(({ fraction, window }) => [window, fraction]).sort()).toEqual([
      ['daily', 0.5],
      ['daily', 0.9],
    ]);
  });

  it('counts live replicas by heartbeat; a silent replica drops out, a closed one at once', async () => {
    const route = randomUUID();
    const [a, b, c] = [await replica(route, { heartbeatMs: 1000 }), await replica(route, { heartbeatMs: 1000 }), await replica(route, { heartbeatMs: 1000 })];
    await a.heartbeat(now);
    await b.heartbeat(now);
    expect(await c.heartbeat(now)).toBe(3);
    expect(c.liveReplicas()).toBe(3);
    await c.close();
    expect(await b.heartbeat(now + 1000)).toBe(2);
    // a missed three heartbeats.
    expect(await b.heartbeat(now + 3001)).toBe(1);
  });

  it('heartbeats from start until close', async () => {
    const route = randomUUID();
    const [a, b] = [await replica(route), await replica(route)];
    a.start();
    try {
      const deadline = Date.now() + 5000;
      while ((await b.heartbeat(Date.now())) !== 2) {
        if (Date.now() > deadline) throw new Error('the started replica never registered');
        await sleep(5);
      }
    } finally {
      await a.close();
    }
    expect(await b.heartbeat(Date.now())).toBe(1);
  });

  it('keeps every key of a route environment under one Redis Cluster hash tag', async () => {
    const route = randomUUID();
    const ledger = await replica(route);
    const result = await ledger.reserve([environment({ daily: 1 }), { id: 'client:alice', budget: budget({ monthly: 5 }) }], 0.1, now);
    if (!result.ok) throw new Error('refused');
    await ledger.settle(result.reservation, 0.1, now);
    await ledger.heartbeat(now);
    const keys = await clients[0]!.keys(`*${route}*`);
    expect(keys.length).toBeGreaterThan(8);
    for (const key of keys) expect(key.startsWith(`llmroute:{team-a/${route}/prod}:`)).toBe(true);
    // Every key expires: nothing of a deleted route stays in Redis for good.
    for (const key of keys) expect(await clients[0]!.pttl(key)).toBeGreaterThan(0);
  });
});
