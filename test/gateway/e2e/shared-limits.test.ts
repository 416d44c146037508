/**
 * Provider rate limits shared through Redis by two gateways (two replicas of one route environment), through the
 * OpenAI SDK, counted at the fake provider: a burst ten times what a second allows waits in the replicas' queues and
 * reaches the provider at the configured pace, a provider's "wait" on one replica holds back the other, and Redis out
 * of reach shows in `llmroute_ratelimit_store_degraded` while requests go on, on a local share.
 * Only counts and lower bounds on time are checked: a loaded machine can make requests late, never early.
 */
import { afterAll, afterEach, beforeAll, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeProvider, type FakeProvider } from '../../support/fake-provider.js';
import { metricValue, startTestGateway, type TestGateway } from '../../support/gateway.js';
import { waitFor } from '../../support/poll.js';
import { startRedis, type RedisServer } from '../../support/redis.js';
import { GPT, KEYS, USER } from './fixtures.js';

let provider: FakeProvider;
let redis: RedisServer;
let replicas: TestGateway[] = [];
beforeAll(async () => {
  [provider, redis] = await Promise.all([startFakeProvider(), startRedis()]);
});
afterEach(async () => {
  await Promise.all(replicas.map((replica) => replica.stop()));
  replicas = [];
  provider.reset();
});
afterAll(() => Promise.all([provider.stop(), redis.stop()]));

/** Two replicas of one route environment sharing `redis`: OpenAI only, at 600 requests a minute (10 a second). */
async function twoReplicas(): Promise<[TestGateway, TestGateway]> {
  const options = {
    providers: [{ name: 'openai', type: 'openai' as const, baseURL: `${provider.url}/v1`, limits: { requestsPerMinute: 600 } }],
    models: [{ name: 'chat', pin: GPT, timeouts: { firstTokenSeconds: 10, idleSeconds: 10, totalSeconds: 30 }, fallback: [{ provider: 'openai' }] }],
    keys: { openai: [KEYS.openai] },
    // A provider's wait over a second is not retried: the request fails over, here to nothing, and fails.
    retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 1000, budgetPercent: 100 },
    redisUrl: redis.url,
  };
  replicas = await Promise.all([startTestGateway(options), startTestGateway(options)]);
  return replicas as [TestGateway, TestGateway];
}

it('two replicas keep the provider under its requests per minute while a 10× burst waits in the queue', async () => {
  const [a, b] = await twoReplicas();
  const start = Date.now();
  const send = (gateway: TestGateway) => gateway.client().chat.completions.create({ model: 'chat', messages: USER }).then(() => 'ok', (error: unknown) => error);
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => send(i % 2 === 0 ? a : b)));
  expect(results.filter((r) => r !== 'ok')).toEqual([]);
  const arrivals = provider.attempts.map((attempt) => attempt.at).sort((x, y) => x - y);
  expect(arrivals).toHaveLength(100);
  // By each arrival, at most the 10 a full bucket holds plus 10 a second since the burst began (+1 for rounding).
  const over = arrivals.map((at, i) => ({ count: i + 1, allowed: 10 + (at - start) / 100 + 1 })).filter(({ count, allowed }) => count > allowed);
  expect(over).toEqual([]);
  // Neither replica fell back to its local share on the way.
  expect([...a.logs, ...b.logs].filter((line) => line.includes('rate limits enforced on this replica'))).toEqual([]);
}, 60_000);

it('a provider\'s retry-after seen by one replica holds back the other', async () => {
  const [a, b] = await twoReplicas();
  provider.script([{ kind: 'rate_limited', retryAfterMs: 3000 }, { kind: 'ok' }]);
  // The 429's wait exceeds the retry policy's longest delay: A's request fails at once.
  await expect(a.client().chat.completions.create({ model: 'chat', messages: USER })).rejects.toMatchObject({ status: 429 });
  const refusedAt = provider.attempts[0]!.at;
  await waitFor(() => a.logs.some((line) => line.includes('rate limit held back by the provider')), { message: 'A held its limiter back', intervalMs: 10, timeoutMs: 15_000 });
  await b.client().chat.completions.create({ model: 'chat', messages: USER });
  expect(provider.attempts).toHaveLength(2);
  // B's request went no earlier than the 3 s the provider asked for (less a little for clock rounding).
  expect(provider.attempts[1]!.at - refusedAt).toBeGreaterThanOrEqual(2950);
  // Counted once, by the replica that saw the headers; the limit is on requests only.
  const holds = async (g: TestGateway) => metricValue(await g.scrape(), 'llmroute_ratelimit_holds_total');
  expect(metricValue(await a.scrape(), 'llmroute_ratelimit_holds_total', { provider: 'openai', unit: 'requests', reason: 'retry_after' })).toBe(1);
  expect([await holds(a), await holds(b)]).toEqual([1, 0]);
}, 30_000);

it('llmroute_ratelimit_store_degraded is 1 from the admission that finds Redis gone until Redis answers again', async () => {
  const [a, b] = await twoReplicas();
  const degraded = async (g: TestGateway) => metricValue(await g.scrape(), 'llmroute_ratelimit_store_degraded');
  expect([await degraded(a), await degraded(b)]).toEqual([0, 0]);
  await redis.kill();
  try {
    // Admitted on A's local share: served all the same.
    await a.client().chat.completions.create({ model: 'chat', messages: USER });
    expect(await degraded(a)).toBe(1);
    // B has asked Redis nothing since: it has not noticed.
    expect(await degraded(b)).toBe(0);
  } finally {
    await redis.start();
  }
  // The store pings Redis every second while it is out of reach.
  for (let i = 0; i < 50 && (await degraded(a)) !== 0; i++) await sleep(100);
  expect(await degraded(a)).toBe(0);
  expect(a.logs.filter((line) => line.includes('Redis reachable again: rate limits shared'))).toHaveLength(1);
}, 30_000);
