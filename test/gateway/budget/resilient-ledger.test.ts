import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis, RedisOptions } from 'ioredis';
import type { Budget } from '../../../src/api/schema.js';
import type { BudgetScope, Reservation, ThresholdCrossing } from '../../../src/gateway/budget/ledger.js';
import { connectBudgetRedis } from '../../../src/gateway/budget/redis-client.js';
import { RedisLedger, type SpendEntry } from '../../../src/gateway/budget/redis-ledger.js';
import { ResilientLedger, type ResilientLedgerOptions } from '../../../src/gateway/budget/resilient-ledger.js';
import { startRedis, type RedisServer } from '../../support/redis.js';

const budget = (fields: Partial<Budget>): Budget => ({ alertAt: [0.8], onExhausted: 'reject', ...fields });
const environment = (fields: Partial<Budget>): BudgetScope => ({ id: 'environment', budget: budget(fields) });
// Near the real time: Redis expires keys by its own clock, at times computed from the callers'.
const now = Date.now();
const clock = () => now;

let server: RedisServer;
const clients: Redis[] = [];
const ledgers: ResilientLedger[] = [];

async function client(url: string, options: RedisOptions = {}): Promise<Redis> {
  const redis = connectBudgetRedis(url, { retryStrategy: () => 20, ...options });
  clients.push(redis);
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return redis;
}

function resilient(options: ResilientLedgerOptions): ResilientLedger {
  const ledger = new ResilientLedger({ probeMs: 20, now: clock, ...options });
  ledgers.push(ledger);
  return ledger;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

/** A Redis ledger whose connection the test breaks at will, in the ways a real one breaks. */
class FlakyRedisLedger extends RedisLedger {
  down = false;
  /** The next record is applied, then its reply lost (Redis died after executing it). */
  loseNextReply = false;
  /** The next record is refused with an error reply (e.g. OOM), so not applied. */
  refuseNext = false;

  private check(): void {
    if (this.down) throw new Error('Connection is closed.');
  }

  /** The next reservation is applied, then its reply lost. */
  loseNextReserveReply = false;

  override async reserve(...args: Parameters<RedisLedger['reserve']>) {
    this.check();
    const result = await super.reserve(...args);
    if (this.loseNextReserveReply) {
      this.loseNextReserveReply = false;
      this.down = true;
      throw new Error('Connection is closed.');
    }
    return result;
  }

  override async record(entry: SpendEntry, at: number) {
    this.check();
    if (this.refuseNext) {
      this.refuseNext = false;
      throw Object.assign(new Error("OOM command not allowed when used memory > 'maxmemory'."), { name: 'ReplyError' });
    }
    const crossings = await super.record(entry, at);
    if (this.loseNextReply) {
      this.loseNextReply = false;
      this.down = true;
      throw new Error('Connection is closed.');
    }
    return crossings;
  }

  override async replay(holds: readonly Reservation[], entries: readonly SpendEntry[], at: number) {
    this.check();
    return super.replay(holds, entries, at);
  }

  override async ping() {
    this.check();
    return super.ping();
  }
}

async function flaky(route = randomUUID()): Promise<FlakyRedisLedger> {
  const redis = new FlakyRedisLedger({ redis: await client(server.url), route: { name: route, environment: 'prod' } });
  await redis.heartbeat(now);
  return redis;
}

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  for (const ledger of ledgers) ledger.close();
  for (const redis of clients) redis.disconnect();
  await server?.stop();
});

describe('ResilientLedger', () => {
  it('falls back to a local share when Redis is killed mid-run, and afterwards Redis holds every settled spend once', async () => {
    const persistent = await startRedis({ persistent: true });
    const ownClients = clients.length;
    let running = true;
    let workers: Promise<void>[] = [];
    try {
      const route = { name: randomUUID(), environment: 'prod' };
      const scope = environment({ daily: 1000 });
      const transitions: boolean[][] = [[], []];
      const redisLedgers = [new RedisLedger({ redis: await client(persistent.url), route }), new RedisLedger({ redis: await client(persistent.url), route })];
      // Two heartbeat rounds, so each replica has seen both.
      for (let round = 0; round < 2; round++) for (const ledger of redisLedgers) await ledger.heartbeat(now);
      expect(redisLedgers.map((ledger) => ledger.liveReplicas())).toEqual([2, 2]);
      const replicas = redisLedgers.map((redis, i) => resilient({ redis, onDegraded: (degraded) => transitions[i]!.push(degraded) }));

      let settled = 0;
      let settledMicros = 0;
      const worker = async (ledger: ResilientLedger) => {
        while (running) {
          const result = await ledger.reserve([scope], 0.02, now);
          // The budget is far from spent in this test, in Redis and in the local share alike.
          if (!result.ok) throw new Error(`refused: ${JSON.stringify(result.exceeded)}`);
          await sleep(1 + Math.random() * 3);
          const actualMicros = 5000 + Math.floor(Math.random() * 15_001);
          await ledger.settle(result.reservation, actualMicros / 1e6, now);
          settledMicros += actualMicros;
          settled++;
        }
      };
      workers = replicas.flatMap((ledger) => Array.from({ length: 8 }, () => worker(ledger)));

      await until(() => settled >= 100, '100 settles against Redis');
      await persistent.kill();
      await until(() => replicas.every((ledger) => ledger.degraded), 'both replicas degraded');
      // Redis would admit $600 of the $1000 budget; each of the two replicas alone may spend only $500 of it.
      const big = await replicas[0]!.reserve([scope], 600, now);
      expect(big.ok === false && big.exceeded).toMatchObject({ scope: 'environment', window: 'daily', limitUSD: 500 });
      const atKill = settled;
      await until(() => settled >= atKill + 100, '100 settles during the outage');

      await persistent.start();
      await until(() => replicas.every((ledger) => !ledger.degraded), 'both replicas back on Redis');
      const atReturn = settled;
      await until(() => settled >= atReturn + 100, '100 settles after the return');
      running = false;
      await Promise.all(workers);

      expect(transitions).toEqual([
        [true, false],
        [true, false],
      ]);
      const fresh = new RedisLedger({ redis: await client(persistent.url), route });
      expect(await fresh.spent(scope, now)).toEqual({ dailyUSD: settledMicros / 1e6, monthlyUSD: settledMicros / 1e6, reservedUSD: 0 });
    } finally {
      running = false;
      await Promise.allSettled(workers);
      // Connections go before their server: ioredis lingers two seconds over a socket whose server is gone.
      for (const redis of clients.splice(ownClients)) redis.disconnect();
      await persistent.stop();
    }
  });

  it('does not count twice a settle applied just before the connection broke', async () => {
    const redis = await flaky();
    const ledger = resilient({ redis });
    const scope = environment({ daily: 10 });
    const result = await ledger.reserve([scope], 1, now);
    if (!result.ok) throw new Error('refused');
    redis.loseNextReply = true;
    await ledger.settle(result.reservation, 0.7, now);
    expect(ledger.degraded).toBe(true);
    redis.down = false;
    await until(() => !ledger.degraded, 'back on Redis');
    expect(await redis.spent(scope, now)).toEqual({ dailyUSD: 0.7, monthlyUSD: 0.7, reservedUSD: 0 });
  });

  it('counts once a settle Redis refused, even after later settles were applied', async () => {
    const redis = await flaky();
    const ledger = resilient({ redis });
    const scope = environment({ daily: 10 });
    const [first, second] = [await ledger.reserve([scope], 1, now), await ledger.reserve([scope], 1, now)];
    if (!first.ok || !second.ok) throw new Error('refused');
    redis.refuseNext = true;
    // The refused settle and one that Redis applies, in flight together.
    await Promise.all([ledger.settle(first.reservation, 0.5, now), ledger.settle(second.reservation, 0.25, now)]);
    await until(() => !ledger.degraded, 'back on Redis');
    expect(await redis.spent(scope, now)).toEqual({ dailyUSD: 0.75, monthlyUSD: 0.75, reservedUSD: 0 });
  });

  it('releases a reservation Redis applied but whose reply was lost, when the local grant that replaced it settles', async () => {
    const redis = await flaky();
    const ledger = resilient({ redis });
    const scope = environment({ daily: 1 });
    redis.loseNextReserveReply = true;
    const granted = await ledger.reserve([scope], 0.6, now);
    if (!granted.ok) throw new Error('refused');
    expect(ledger.degraded).toBe(true);
    redis.down = false;
    await until(() => !ledger.degraded, 'back on Redis');
    // Held once, not twice, after the hand-over.
    expect(await redis.spent(scope, now)).toEqual({ dailyUSD: 0, monthlyUSD: 0, reservedUSD: 0.6 });
    await ledger.settle(granted.reservation, 0.5, now);
    expect(await redis.spent(scope, now)).toEqual({ dailyUSD: 0.5, monthlyUSD: 0.5, reservedUSD: 0 });
  });

  it('hands reservations granted locally to Redis on its return, so they hold budget until they settle', async () => {
    const redis = await flaky();
    const ledger = resilient({ redis });
    const scope = environment({ daily: 1 });
    redis.down = true;
    const local = await ledger.reserve([scope], 0.6, now);
    if (!local.ok) throw new Error('refused');
    expect(ledger.degraded).toBe(true);
    redis.down = false;
    await until(() => !ledger.degraded, 'back on Redis');
    expect(await redis.spent(scope, now)).toEqual({ dailyUSD: 0, monthlyUSD: 0, reservedUSD: 0.6 });
    expect((await ledger.reserve([scope], 0.5, now)).ok).toBe(false);
    await ledger.settle(local.reservation, 0.3, now);
    expect(await redis.spent(scope, now)).toEqual({ dailyUSD: 0.3, monthlyUSD: 0.3, reservedUSD: 0 });
  });

  it('carries known spend into the local share and reports a threshold once across the outage', async () => {
    const redis = await flaky();
    const crossings: ThresholdCrossing[] = [];
    const ledger = resilient({ redis, onThreshold: (crossing) => crossings.push(crossing) });
    const scope = environment({ daily: 1, alertAt: [0.5] });
    const before = await ledger.reserve([scope], 0.4, now);
    if (!before.ok) throw new Error('refused');
    await ledger.settle(before.reservation, 0.4, now);
    redis.down = true;
    // One live replica: the share is the whole budget, of which $0.40 is known spent.
    const tooMuch = await ledger.reserve([scope], 0.7, now);
    expect(tooMuch.ok === false && tooMuch.exceeded).toMatchObject({ limitUSD: 1, spentUSD: 0.4 });
    const during = await ledger.reserve([scope], 0.2, now);
    if (!during.ok) throw new Error('refused');
    await ledger.settle(during.reservation, 0.2, now);
    expect(crossings.map(({ fraction, window }) => [window, fraction])).toEqual([['daily', 0.5]]);
    expect(await ledger.spent(scope, now)).toMatchObject({ dailyUSD: 0.6 });
    redis.down = false;
    await until(() => !ledger.degraded, 'back on Redis');
    // The replay crossed 0.5 in Redis too; it was already reported.
    expect(crossings).toHaveLength(1);
    expect(await ledger.spent(scope, now)).toMatchObject({ dailyUSD: 0.6 });
  });

  it('starts on a local share of 1/minReplicas when Redis was never reachable', async () => {
    const unreachable = await startRedis();
    const url = unreachable.url;
    await unreachable.stop();
    const connection = connectBudgetRedis(url, { lazyConnect: true, retryStrategy: () => null });
    clients.push(connection);
    const redis = new RedisLedger({ redis: connection, route: { name: 'r', environment: 'prod' } });
    const degraded: boolean[] = [];
    const ledger = resilient({ redis, minReplicas: 4, onDegraded: (value) => degraded.push(value) });
    const result = await ledger.reserve([environment({ monthly: 100 })], 30, now);
    expect(result.ok === false && result.exceeded).toMatchObject({ window: 'monthly', limitUSD: 25 });
    expect(degraded).toEqual([true]);
  });
});
