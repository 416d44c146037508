/**
 * The budget gauges (`llmroute_budget_{spent,reserved,remaining}_usd`) through real gateways, scraped as Prometheus
 * would: they must show the ledger actually in use. In memory, a gateway's own books; with Redis, the shared
 * counters, so a replica that served nothing shows what the other spent and holds; with Redis gone, a replica on its
 * local share shows that share scaled to the whole budget, and one that has not noticed keeps its last values.
 *
 * Costs are whole micro-dollars ($1 per million input tokens, $20 per million output tokens, usage scripted), so
 * what was spent is known exactly from the usage the fake reported, never from the gateway's own books.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { metricValue, type TestGateway, type TestGatewayOptions } from '../../support/gateway.js';
import { startRedis, type RedisServer } from '../../support/redis.js';
import { GPT, TIMEOUTS, USER, gatewayFor, resetFakes, startFakes, stopFakes, type Fakes } from './fixtures.js';

const PRICE = { input: 1, output: 20 };
const USAGE = { prompt_tokens: 7, completion_tokens: 10 };
/** What one answer costs, in USD. */
const COST = (USAGE.prompt_tokens * PRICE.input + USAGE.completion_tokens * PRICE.output) / 1_000_000;
const ENV_DAILY = { scope: 'environment', window: 'daily' };
const ENV_MONTHLY = { scope: 'environment', window: 'monthly' };
/** The ledger keeps whole micro-dollars and halves spend into a share: a few micro-dollars of rounding. */
const DIGITS = 5;

let fakes: Fakes;
let redis: RedisServer;
const gateways: TestGateway[] = [];
beforeAll(async () => {
  [fakes, redis] = await Promise.all([startFakes(), startRedis()]);
});
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  resetFakes(fakes);
});
afterAll(async () => {
  await Promise.all([stopFakes(fakes), redis.stop()]);
});

async function gateway(overrides: Partial<TestGatewayOptions>): Promise<TestGateway> {
  const started = await gatewayFor(fakes, {
    models: [{ name: 'chat', pin: GPT, maxOutputTokens: 50, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] }],
    prices: { [GPT]: PRICE },
    ...overrides,
  });
  gateways.push(started);
  return started;
}

/** The three gauges of one budget window, from one scrape. */
async function gauges(g: TestGateway, labels: Record<string, string>): Promise<{ spent: number; reserved: number; remaining: number }> {
  const text = await g.scrape();
  return {
    spent: metricValue(text, 'llmroute_budget_spent_usd', labels),
    reserved: metricValue(text, 'llmroute_budget_reserved_usd', labels),
    remaining: metricValue(text, 'llmroute_budget_remaining_usd', labels),
  };
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** Answers `count` requests through `g`, one at a time. */
async function spend(g: TestGateway, count: number, apiKey?: string): Promise<void> {
  for (let i = 0; i < count; i++) await g.client(apiKey).chat.completions.create({ model: 'chat', messages: USER });
}

describe('the budget gauges', () => {
  // First: ioredis keeps a timer of up to 2 s after disconnecting from the Redis that was killed, which would
  // otherwise outlive the file.
  it('with Redis: every replica shows the shared books; with Redis gone, a replica on its local share shows that share for the whole', async () => {
    const a = await gateway({ budget: { daily: 0.01 }, redisUrl: redis.url });
    // B registers second: its first heartbeat already counts two live replicas, so its local share is half.
    const b = await gateway({ budget: { daily: 0.01 }, redisUrl: redis.url });
    fakes.openai.script({ kind: 'ok', usage: USAGE });
    await spend(a, 4);
    const before = { spent: expect.closeTo(4 * COST, DIGITS), reserved: 0, remaining: expect.closeTo(0.01 - 4 * COST, DIGITS) };
    // B served nothing: it reads what A spent from Redis.
    expect(await gauges(b, ENV_DAILY)).toEqual(before);
    expect(await gauges(a, ENV_DAILY)).toEqual(before);

    // A reservation made through A is held in Redis, and B sees it.
    fakes.openai.script({ kind: 'ok', usage: USAGE, delayMs: 1500 });
    const inFlight = spend(a, 1);
    await until(async () => (await gauges(b, ENV_DAILY)).reserved > 0, 'B sees the reservation A made');
    const held = await gauges(b, ENV_DAILY);
    expect(held.remaining).toBeCloseTo(0.01 - 4 * COST - held.reserved, DIGITS);
    await inFlight;
    const settled = { spent: expect.closeTo(5 * COST, DIGITS), reserved: 0, remaining: expect.closeTo(0.01 - 5 * COST, DIGITS) };
    expect(await gauges(b, ENV_DAILY)).toEqual(settled);
    expect(await gauges(a, ENV_DAILY)).toEqual(settled);

    await redis.kill();
    try {
      fakes.openai.script({ kind: 'ok', usage: USAGE });
      await spend(b, 1);
      const text = await b.scrape();
      expect(metricValue(text, 'llmroute_budget_store_degraded')).toBe(1);
      // B enforces half the budget, starting from half of what it last saw spent, plus its own answer since: the
      // gauges show that share twice over. (Redis' books plus B's answer would be 6 × COST.)
      expect(metricValue(text, 'llmroute_budget_spent_usd', ENV_DAILY)).toBeCloseTo(2 * (5 * COST / 2 + COST), DIGITS);
      expect(metricValue(text, 'llmroute_budget_remaining_usd', ENV_DAILY)).toBeCloseTo(2 * (0.01 / 2 - 5 * COST / 2 - COST), DIGITS);
      // A has had no request since: it has not fallen back, cannot read Redis, and keeps what it showed last.
      expect(await gauges(a, ENV_DAILY)).toEqual(settled);
      expect(metricValue(await a.scrape(), 'llmroute_budget_store_degraded')).toBe(0);
    } finally {
      await redis.start();
    }
  });

  it('in memory: spend of the environment and of a client, what requests in flight hold, what is left', async () => {
    const g = await gateway({ budget: { daily: 0.5, monthly: 5 }, clients: { web: 'token-web', batch: 'token-batch' }, clientBudgets: { web: { daily: 0.1 } } });
    fakes.openai.script({ kind: 'ok', usage: USAGE });
    await spend(g, 3, 'token-web');
    await spend(g, 2, 'token-batch');

    expect(await gauges(g, ENV_DAILY)).toEqual({ spent: expect.closeTo(5 * COST, DIGITS), reserved: 0, remaining: expect.closeTo(0.5 - 5 * COST, DIGITS) });
    expect(await gauges(g, ENV_MONTHLY)).toEqual({ spent: expect.closeTo(5 * COST, DIGITS), reserved: 0, remaining: expect.closeTo(5 - 5 * COST, DIGITS) });
    expect(await gauges(g, { scope: 'client:web', window: 'daily' })).toEqual({ spent: expect.closeTo(3 * COST, DIGITS), reserved: 0, remaining: expect.closeTo(0.1 - 3 * COST, DIGITS) });
    const text = await g.scrape();
    // Client web has no monthly limit: spend is tracked, nothing is "left". Client batch has no budget at all.
    expect(metricValue(text, 'llmroute_budget_spent_usd', { scope: 'client:web', window: 'monthly' })).toBeCloseTo(3 * COST, DIGITS);
    expect(text).not.toMatch(/llmroute_budget_remaining_usd\{scope="client:web",window="monthly"/);
    expect(text).not.toContain('client:batch');

    // A request held upstream holds its worst case in both budgets it is admitted against.
    fakes.openai.script({ kind: 'ok', usage: USAGE, delayMs: 1500 });
    const inFlight = spend(g, 1, 'token-web');
    await until(async () => (await gauges(g, ENV_DAILY)).reserved > 0, 'the request in flight is reserved');
    const held = await gauges(g, { scope: 'client:web', window: 'daily' });
    expect(held.reserved).toBeGreaterThan(COST);
    expect(held.remaining).toBeCloseTo(0.1 - 3 * COST - held.reserved, DIGITS);
    expect((await gauges(g, ENV_DAILY)).reserved).toBeCloseTo(held.reserved, DIGITS);
    await inFlight;
    expect(await gauges(g, { scope: 'client:web', window: 'daily' })).toEqual({ spent: expect.closeTo(4 * COST, DIGITS), reserved: 0, remaining: expect.closeTo(0.1 - 4 * COST, DIGITS) });
  });
});
