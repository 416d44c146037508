/**
 * Budgets end to end: real gateways, the official SDK as the client, a fake provider that reports usage, and for the
 * shared ledger a real redis-server. What counts as spent is computed from the usage the fake reported for the
 * requests it served, times the route's price: never from the gateway's own books, which are what is under test.
 *
 * Prices are chosen so that every cost is a whole number of micro-dollars ($1 per million input tokens, $20 per
 * million output tokens): the ledger's micro-dollar rounding then changes nothing and sums compare exactly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import OpenAI, { type APIError } from 'openai';
import type { Attempt, FakeProvider } from '../../support/fake-provider.js';
import { metricValue, type TestGateway, type TestGatewayOptions } from '../../support/gateway.js';
import { startRedis, type RedisServer } from '../../support/redis.js';
import { GPT, GPT_MINI, TIMEOUTS, USER, gatewayFor, resetFakes, startFakes, stopFakes, type Fakes } from './fixtures.js';

const PRICE = { input: 1, output: 20 };
const MAX_OUTPUT = 50;
/** The gateway's estimate of the prompt `Say hello.`: (10 characters + 16 of framing) / 4, rounded up. */
const PROMPT_ESTIMATE = 7;
/** What admission reserves per request, in micro-dollars: the whole prompt and every output token it may produce. */
const WORST_MICROS = PROMPT_ESTIMATE * PRICE.input + MAX_OUTPUT * PRICE.output;
const ROUTE_KEY = 'llmroute:{test/e2e/test}:';

let fakes: Fakes;
let redis: RedisServer;
let inspect: Redis;
const gateways: TestGateway[] = [];
beforeAll(async () => {
  [fakes, redis] = await Promise.all([startFakes(), startRedis({ persistent: true })]);
  inspect = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  inspect.on('error', () => undefined);
  await inspect.connect();
});
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  resetFakes(fakes);
  await inspect.flushall();
});
afterAll(async () => {
  inspect.disconnect();
  await Promise.all([stopFakes(fakes), redis.stop()]);
});

/** A counter of today's environment budget in Redis (`spent` or `reserved`), in micro-dollars. */
async function redisMicros(counter: 'spent' | 'reserved'): Promise<number> {
  const day = new Date().toISOString().slice(0, 10);
  return Number((await inspect.get(`${ROUTE_KEY}${counter}:environment:${day}`)) ?? 0);
}

async function gateway(overrides: Partial<TestGatewayOptions> = {}): Promise<TestGateway> {
  const started = await gatewayFor(fakes, {
    models: [{ name: 'chat', pin: GPT, maxOutputTokens: MAX_OUTPUT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] }],
    prices: { [GPT]: PRICE },
    ...overrides,
  });
  gateways.push(started);
  return started;
}

interface Reported {
  prompt_tokens: number;
  completion_tokens: number;
}

/**
 * Scripts `fake` to answer every request after `delayMs`, reporting a usage that varies from request to request
 * (10 to 40 output tokens, under the reserved 50). Returns what it reported, by attempt index.
 */
function reportUsage(fake: FakeProvider, delayMs = 30): Map<number, Reported> {
  const reported = new Map<number, Reported>();
  fake.script((attempt) => {
    const usage = { prompt_tokens: PROMPT_ESTIMATE, completion_tokens: 10 + ((attempt.index * 7) % 31) };
    reported.set(attempt.index, usage);
    return { kind: 'ok', usage, delayMs };
  });
  return reported;
}

/** Micro-dollars the fake charged for the attempts it served (those `which` selects), at the route's price. */
function spentMicros(fake: FakeProvider, reported: Map<number, Reported>, which: (attempt: Attempt) => boolean = () => true): number {
  return fake.attempts
    .filter((a) => a.outcome === 'ok' && !a.aborted && which(a))
    .reduce((sum, a) => {
      const usage = reported.get(a.index);
      if (usage === undefined) throw new Error(`attempt ${a.index} has no reported usage`);
      return sum + usage.prompt_tokens * PRICE.input + usage.completion_tokens * PRICE.output;
    }, 0);
}

interface Outcome {
  ok: boolean;
  error?: APIError;
  /** Index of the client used. */
  via: number;
  at: number;
}

/**
 * Sends `total` non-streaming requests through the SDK, `concurrency` at a time, round-robin over `clients`. A
 * worker refused with 429 waits `backoffMs` before its next request, so the run lasts while reservations settle.
 * Any failure other than an APIError fails the test.
 */
async function load(
  clients: OpenAI[],
  total: number,
  concurrency: number,
  options: { backoffMs?: number; user?: (n: number) => string; stopWhen?: () => boolean; outcomes?: Outcome[] } = {},
): Promise<Outcome[]> {
  const outcomes = options.outcomes ?? [];
  let next = 0;
  const worker = async () => {
    while (next < total && !(options.stopWhen?.() ?? false)) {
      const n = next++;
      const via = n % clients.length;
      try {
        await (clients[via] as OpenAI).chat.completions.create({ model: 'chat', messages: USER, ...(options.user ? { user: options.user(n) } : {}) });
        outcomes.push({ ok: true, via, at: Date.now() });
      } catch (error) {
        if (!(error instanceof OpenAI.APIError)) throw error;
        outcomes.push({ ok: false, error, via, at: Date.now() });
        if (options.backoffMs) await sleep(options.backoffMs);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return outcomes;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** The next UTC midnight after `now`: when a daily budget resets. */
function nextUtcMidnight(now = Date.now()): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}

/** Checks a 429 is the gateway's own budget refusal, as the SDK surfaces it. */
function expectBudgetExceeded(error: APIError | undefined, whose: string): void {
  expect(error).toBeInstanceOf(OpenAI.RateLimitError);
  expect(error?.code).toBe('budget_exceeded');
  expect(error?.message).toContain(whose);
  expect(error?.message).toContain(`it resets at ${new Date(nextUtcMidnight()).toISOString()}`);
  const retryAfter = Number(error?.headers?.get('retry-after'));
  expect(Math.abs(retryAfter - (nextUtcMidnight() - Date.now()) / 1000)).toBeLessThan(10);
}

const usd = (micros: number) => micros / 1_000_000;

/**
 * A TCP proxy in front of Redis that can lose one reply: armed, it forwards the next settle (the RECORD script,
 * recognised by its `applied:` key) to Redis, then drops Redis's answer and cuts the connection, as if Redis had
 * died right after executing it. Whatever else shared that round trip is lost with it.
 */
async function replyLosingProxy(target: number): Promise<{ url: string; arm(): void; cuts: () => number; close(): Promise<void> }> {
  let armed = false;
  let cuts = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    let dropReply = false;
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      if (armed && chunk.includes(':applied:')) {
        armed = false;
        dropReply = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!dropReply) return void client.write(chunk);
      cuts++;
      cut();
    });
    for (const socket of [client, upstream]) {
      socket.on('error', cut);
      socket.on('close', () => {
        sockets.delete(socket);
        cut();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    arm: () => void (armed = true),
    cuts: () => cuts,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('an environment budget under 200 concurrent requests', () => {
  it('one gateway (memory ledger), 20 at a time: spend never exceeds the budget; the rest get 429 budget_exceeded', async () => {
    const g = await gateway({ budget: { daily: 0.02 } });
    const reported = reportUsage(fakes.openai);
    const outcomes = await load([g.client()], 200, 20, { backoffMs: 20 });
    const served = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o) => !o.ok);
    const spent = spentMicros(fakes.openai, reported);
    expect(served.length + refused.length).toBe(200);
    // Every request the gateway admitted reached the provider, and none it refused did.
    expect(fakes.openai.attempts).toHaveLength(served.length);
    expect(spent).toBeLessThanOrEqual(20_000);
    // The budget was the limit, not something else: most of it was used, and demand was five times over it.
    expect(spent).toBeGreaterThan(20_000 / 2);
    expect(refused.length).toBeGreaterThan(100);
    for (const { error } of refused) expectBudgetExceeded(error, 'the environment\'s daily budget of $0.02 is spent');
    // Each refusal is counted, and logged under the request id the client was given.
    const metrics = await g.scrape();
    expect(metricValue(metrics, 'llmroute_budget_rejected_requests_total', { scope: 'environment', window: 'daily' })).toBe(refused.length);
    const refusals = g.logs.map((line) => JSON.parse(line) as { msg: string; outcome?: string; requestId?: string }).filter((l) => l.msg === 'request' && l.outcome === 'budget_exceeded');
    expect(new Set(refusals.map((l) => l.requestId))).toEqual(new Set(refused.map((o) => o.error?.requestID)));
    // alertAt (default 0.8) fired once, when spend crossed it.
    expect(metricValue(metrics, 'llmroute_budget_threshold_crossed_total', { scope: 'environment', window: 'daily', fraction: '0.8' })).toBe(1);
    expect(g.logs.filter((line) => line.includes('budget threshold crossed'))).toHaveLength(1);
  });

  it('an SDK client with its default retries gets the refusal at once, instead of sleeping until the reset', async () => {
    const g = await gateway({ budget: { daily: 0.001 } });
    reportUsage(fakes.openai, 0);
    // The Node SDK retries a 429 after its retry-after, however long (hours, for a daily budget), unless the answer
    // says `x-should-retry: false`. Checked first without retries, so that a missing header fails instead of hanging.
    const refused = await load([g.client()], 1, 1);
    expectBudgetExceeded(refused[0]?.error, 'the environment\'s daily budget of $0.001 is spent');
    expect(refused[0]?.error?.headers?.get('x-should-retry')).toBe('false');
    const client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'unused', timeout: 5000 });
    expect(client.maxRetries).toBe(2);
    const started = Date.now();
    const error = await client.chat.completions.create({ model: 'chat', messages: USER }).then(
      () => undefined,
      (reason: unknown) => reason as APIError,
    );
    expectBudgetExceeded(error, 'the environment\'s daily budget of $0.001 is spent');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(fakes.openai.attempts).toHaveLength(0);
  });

  it('a provider\'s own 429 is not budget_exceeded, and costs the budget nothing', async () => {
    const g = await gateway({ budget: { daily: 0.02 } });
    fakes.openai.script({ kind: 'rate_limited' });
    const client = g.client();
    const refused = await load([client], 10, 2);
    expect(refused).toHaveLength(10);
    for (const { error } of refused) {
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect(error?.code).toBe('rate_limit_exceeded');
    }
    // Refused attempts are not charged: the whole budget is still there.
    const reported = reportUsage(fakes.openai, 0);
    const outcomes = await load([client], 100, 1);
    expect(spentMicros(fakes.openai, reported)).toBeGreaterThan(20_000 - WORST_MICROS);
    expect(outcomes.filter((o) => !o.ok).every((o) => o.error?.code === 'budget_exceeded')).toBe(true);
  });

  it('two gateways sharing one Redis: spend never exceeds the one budget, and Redis holds exactly what was spent', async () => {
    const a = await gateway({ budget: { daily: 0.02 }, redisUrl: redis.url });
    const b = await gateway({ budget: { daily: 0.02 }, redisUrl: redis.url });
    const reported = reportUsage(fakes.openai);
    const outcomes = await load([a.client(), b.client()], 200, 20, { backoffMs: 20, user: (n) => `via-${n % 2}` });
    const spent = spentMicros(fakes.openai, reported);
    // Each gateway alone would have let 20,000 micro-dollars through: together they let the budget through once.
    expect(spent).toBeLessThanOrEqual(20_000);
    expect(spent).toBeGreaterThan(20_000 / 2);
    for (const via of [0, 1]) {
      expect(spentMicros(fakes.openai, reported, (a) => (a.body as { user?: string }).user === `via-${via}`)).toBeGreaterThan(0);
      const refused = outcomes.filter((o) => o.via === via && !o.ok);
      expect(refused.length).toBeGreaterThan(0);
      for (const { error } of refused) expectBudgetExceeded(error, 'the environment\'s daily budget of $0.02 is spent');
    }
    expect(await redisMicros('spent')).toBe(spent);
    // Every reservation was settled: nothing holds budget after the run.
    expect(await redisMicros('reserved')).toBe(0);
    const scrapes = [await a.scrape(), await b.scrape()];
    for (const metrics of scrapes) expect(metricValue(metrics, 'llmroute_budget_store_degraded')).toBe(0);
    // The 80% alert fired once for the shared budget: on whichever gateway's settle crossed it.
    expect(scrapes.reduce((n, metrics) => n + metricValue(metrics, 'llmroute_budget_threshold_crossed_total', { scope: 'environment', window: 'daily', fraction: '0.8' }), 0)).toBe(1);
  });
});

describe('a client budget and the environment budget together', () => {
  it('caps the client at its own budget and everyone at the environment\'s', async () => {
    const g = await gateway({
      clients: { alice: 'token-alice-0123456789', bob: 'token-bob-0123456789' },
      budget: { daily: 0.03 },
      clientBudgets: { alice: { daily: 0.01 } },
    });
    const reported = reportUsage(fakes.openai);
    const user = (name: string) => (a: Attempt) => (a.body as { user?: string }).user === name;
    const [alice, bob] = await Promise.all([
      load([g.client('token-alice-0123456789')], 100, 8, { backoffMs: 20, user: () => 'alice' }),
      load([g.client('token-bob-0123456789')], 100, 8, { backoffMs: 20, user: () => 'bob' }),
    ]);
    const aliceSpent = spentMicros(fakes.openai, reported, user('alice'));
    const bobSpent = spentMicros(fakes.openai, reported, user('bob'));
    expect(aliceSpent).toBeLessThanOrEqual(10_000);
    expect(aliceSpent + bobSpent).toBeLessThanOrEqual(30_000);
    // Bob, with no budget of his own, got past Alice's cap; the environment's cap then stopped him.
    expect(bobSpent).toBeGreaterThan(10_000);
    expect(aliceSpent + bobSpent).toBeGreaterThan(30_000 / 2);
    const aliceRefusals = alice.filter((o) => !o.ok).map((o) => o.error);
    const bobRefusals = bob.filter((o) => !o.ok).map((o) => o.error);
    // Alice is told about her own budget (or, once it too is spent, the environment's: of two windows that
    // reset together, the environment's is named); Bob only ever about the environment's.
    expect(aliceRefusals.some((e) => e?.message.includes('client "alice"\'s daily budget of $0.01 is spent'))).toBe(true);
    for (const error of aliceRefusals) expectBudgetExceeded(error, 'daily budget of');
    for (const error of aliceRefusals) expect(error?.message).toMatch(/client "alice"'s daily budget of \$0\.01|the environment's daily budget of \$0\.03/);
    expect(bobRefusals.length).toBeGreaterThan(0);
    for (const error of bobRefusals) expectBudgetExceeded(error, 'the environment\'s daily budget of $0.03 is spent');
    // Per-client cost, as the metrics report it, matches what each spent; refusals are counted by the budget named.
    const metrics = await g.scrape();
    const rejected = (scope: string) => metricValue(metrics, 'llmroute_budget_rejected_requests_total', { scope, window: 'daily' });
    expect(rejected('client:alice')).toBe(aliceRefusals.filter((e) => e?.message.includes('client "alice"')).length);
    expect(rejected('environment')).toBe(aliceRefusals.length + bobRefusals.length - rejected('client:alice'));
    expect(metricValue(metrics, 'llmroute_cost_usd_total', { client: 'alice' })).toBeCloseTo(usd(aliceSpent), 9);
    expect(metricValue(metrics, 'llmroute_cost_usd_total', { client: 'bob' })).toBeCloseTo(usd(bobSpent), 9);
  });
});

describe('when Redis is out of reach', () => {
  it('a gateway whose Redis is out of reach at startup starts anyway and serves on its local share', async () => {
    // (First of these tests: ioredis keeps a 2 s timer after disconnecting from a Redis it never reached, which
    // would otherwise outlive the file.) A port nothing listens on: a proxy's, closed.
    const closed = await replyLosingProxy(redis.port);
    await closed.close();
    const started = Date.now();
    const g = await gateway({ budget: { daily: 0.01 }, redisUrl: closed.url });
    expect(Date.now() - started).toBeLessThan(2500);
    reportUsage(fakes.openai, 0);
    const outcomes = await load([g.client()], 40, 4);
    expect(outcomes.filter((o) => o.ok).length).toBeGreaterThan(0);
    // Never having seen another replica, it holds the share the configured replica count (2, the default) gives it.
    for (const { error } of outcomes.filter((o) => !o.ok)) expectBudgetExceeded(error, 'the environment\'s daily budget of $0.005 is spent');
    expect(metricValue(await g.scrape(), 'llmroute_budget_store_degraded')).toBe(1);
  });

  it('killed in the middle of a run: both gateways keep serving within a local share, say so in a gauge, and afterwards Redis holds every spend once', async () => {
    const BUDGET = 40_000;
    const a = await gateway({ budget: { daily: usd(BUDGET) }, redisUrl: redis.url });
    const aStarted = Date.now();
    const b = await gateway({ budget: { daily: usd(BUDGET) }, redisUrl: redis.url });
    const both = [a, b];
    const degraded = async (g: TestGateway) => metricValue(await g.scrape(), 'llmroute_budget_store_degraded');
    const reported = reportUsage(fakes.openai);
    // A counts the live replicas by heartbeat, every 5 s: wait until it has seen B, so both know there are two.
    await sleep(Math.max(0, aStarted + 5500 - Date.now()));

    let stop = false;
    let down = false;
    const outcomes: Outcome[] = [];
    const running = load([a.client(), b.client()], 100_000, 8, { backoffMs: 20, user: (n) => `via-${n % 2}`, stopWhen: () => stop, outcomes });
    const via = (n: number) => (attempt: Attempt) => (attempt.body as { user?: string }).user === `via-${n}`;
    try {
      await until(async () => (await redisMicros('spent')) >= 12_000, 'three tenths of the budget are spent through Redis');
      const killedAt = Date.now();
      await redis.kill();
      down = true;

      // Both notice at their next request, and keep serving from a local share: half the budget each.
      await until(async () => (await degraded(a)) === 1 && (await degraded(b)) === 1, 'both gateways report the store degraded');
      await until(async () => [0, 1].every((n) => refusedSince(n, killedAt).length > 0), 'both gateways have spent their local share');
      for (const n of [0, 1]) {
        for (const error of refusedSince(n, killedAt)) expectBudgetExceeded(error, 'the environment\'s daily budget of $0.02 is spent');
        const inOutage = (attempt: Attempt) => via(n)(attempt) && attempt.at > killedAt;
        const spentInOutage = spentMicros(fakes.openai, reported, inOutage);
        // Its share: half the budget less its half of what was spent before (6,000 or more), give or take what it
        // had in flight (4 requests). A replica holding the whole budget alone would have had about 28,000 left.
        expect(spentInOutage).toBeGreaterThan(0);
        expect(spentInOutage).toBeLessThanOrEqual(BUDGET / 2);
      }
      for (const g of both) expect(await degraded(g)).toBe(1);

      await redis.start();
      down = false;
      await until(async () => (await degraded(a)) === 0 && (await degraded(b)) === 0, 'both gateways are back on Redis', 15_000);
      // Back in Redis, the spend of the outage included: the whole budget is spent, and refusals name all of it.
      await until(async () => [0, 1].every((n) => refusedSince(n, Date.now() - 200, '$0.04').length > 0), 'both refuse on the shared budget');
    } finally {
      stop = true;
      await running;
      // A failed check must not leave the other tests without their Redis.
      if (down) await redis.start();
    }
    for (const { error } of outcomes.filter((o) => !o.ok)) expect(error?.code).toBe('budget_exceeded');

    const spent = spentMicros(fakes.openai, reported);
    // No spend lost, none counted twice: Redis holds exactly what the provider charged.
    expect(await redisMicros('spent')).toBe(spent);
    expect(await redisMicros('reserved')).toBe(0);
    // The local shares held the budget together, up to the requests in flight when Redis died (reserved in Redis,
    // settled against the share) and the spend one replica had not yet seen of the other.
    expect(spent).toBeLessThanOrEqual(BUDGET + 8 * WORST_MICROS);
    expect(spent).toBeGreaterThan(BUDGET * 0.75);

    function refusedSince(n: number, since: number, amount = ''): (APIError | undefined)[] {
      return outcomes.filter((o) => o.via === n && !o.ok && o.at > since && (o.error?.message.includes(amount) ?? false)).map((o) => o.error);
    }
  });

  it('a settle Redis applied but whose reply was lost is replayed and not counted twice', async () => {
    const proxy = await replyLosingProxy(redis.port);
    try {
      const g = await gateway({ budget: { daily: 1 }, redisUrl: proxy.url });
      const reported = reportUsage(fakes.openai, 10);
      const degradedNow = async () => metricValue(await g.scrape(), 'llmroute_budget_store_degraded');
      let stop = false;
      let sawDegraded = false;
      const outcomes: Outcome[] = [];
      const running = load([g.client()], 100_000, 4, { stopWhen: () => stop, outcomes });
      try {
        await until(() => outcomes.length >= 20, 'twenty requests are served');
        proxy.arm();
        await until(async () => (sawDegraded ||= (await degradedNow()) === 1), 'the gateway falls back to its local share');
        expect(proxy.cuts()).toBe(1);
        await until(async () => (await degradedNow()) === 0, 'the gateway is back on Redis', 15_000);
        const back = outcomes.length;
        await until(() => outcomes.length >= back + 20, 'twenty more requests are served');
      } finally {
        stop = true;
        await running;
      }
      expect(outcomes.every((o) => o.ok)).toBe(true);
      expect(await redisMicros('spent')).toBe(spentMicros(fakes.openai, reported));
      expect(await redisMicros('reserved')).toBe(0);
    } finally {
      await Promise.all(gateways.splice(0).map((g) => g.stop()));
      await proxy.close();
    }
  });
});

describe('onExhausted: degrade', () => {
  it('serves the cheaper degradeTo model once the budget is spent', async () => {
    const g = await gateway({
      models: [
        { name: 'chat', pin: GPT, maxOutputTokens: MAX_OUTPUT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] },
        { name: 'cheap', pin: GPT_MINI, maxOutputTokens: MAX_OUTPUT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] },
      ],
      prices: { [GPT]: PRICE, [GPT_MINI]: { input: 0.1, output: 1 } },
      budget: { daily: 0.005, onExhausted: 'degrade', degradeTo: 'cheap' },
    });
    const reported = reportUsage(fakes.openai, 0);
    const client = g.client();
    const answered: string[] = [];
    for (let i = 0; i < 20; i++) answered.push((await client.chat.completions.create({ model: 'chat', messages: USER })).model);
    const asked = fakes.openai.attempts.map((a) => (a.body as { model: string }).model);
    // Every request was answered; the pinned model while the budget lasted, the cheaper one after, and never back.
    expect(answered).toEqual(asked);
    const switched = asked.indexOf(GPT_MINI);
    expect(switched).toBeGreaterThan(0);
    expect(asked.slice(0, switched).every((m) => m === GPT)).toBe(true);
    expect(asked.slice(switched).every((m) => m === GPT_MINI)).toBe(true);
    expect(spentMicros(fakes.openai, reported, (a) => (a.body as { model: string }).model === GPT)).toBeLessThanOrEqual(5_000);
    const metrics = await g.scrape();
    expect(metricValue(metrics, 'llmroute_budget_degraded_requests_total', { model: 'chat', to: 'cheap' })).toBe(20 - switched);
    expect(g.logs.filter((line) => line.includes('budget exhausted; serving the cheaper model instead'))).toHaveLength(20 - switched);
  });
});

describe('cost metrics', () => {
  it('llmroute_cost_usd_total is what was spent; a model with no price is counted and warned about once', async () => {
    const UNPRICED = 'in-house-model-2025-01-01';
    const g = await gateway({
      models: [
        { name: 'chat', pin: GPT, maxOutputTokens: MAX_OUTPUT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] },
        { name: 'house', pin: UNPRICED, maxOutputTokens: MAX_OUTPUT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] },
      ],
      budget: { daily: 10 },
    });
    const reported = reportUsage(fakes.openai, 0);
    const client = g.client();
    const priced = await load([client], 30, 5);
    expect(priced.every((o) => o.ok)).toBe(true);
    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'house', messages: USER });
    const spent = spentMicros(fakes.openai, reported, (a) => (a.body as { model: string }).model === GPT);
    expect(spent).toBeGreaterThan(0);
    const metrics = await g.scrape();
    expect(metricValue(metrics, 'llmroute_cost_usd_total')).toBeCloseTo(usd(spent), 9);
    expect(metricValue(metrics, 'llmroute_cost_usd_total', { model: 'chat', provider: 'openai', client: 'anonymous', variant: 'baseline' })).toBeCloseTo(usd(spent), 9);
    expect(metricValue(metrics, 'llmroute_cost_usd_total', { model: 'house' })).toBe(0);
    expect(metricValue(metrics, 'llmroute_unknown_price_total', { model: UNPRICED })).toBe(3);
    expect(metricValue(metrics, 'llmroute_unknown_price_total', { model: GPT })).toBe(0);
    const warnings = g.logs.filter((line) => line.includes('no price known for a model'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(UNPRICED);
  });
});
