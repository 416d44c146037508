/**
 * The circuit breaker, end to end: during an outage of the primary the fallback serves every request, the primary
 * stops receiving attempts once its breaker opens, and traffic returns to the primary after the outage is over and
 * `openSeconds` have passed (half-open probes succeed and close the breaker).
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { flapping } from '../../support/fake-provider.js';
import { metricValue } from '../../support/gateway.js';
import { ask, gatewayFor, startFakes, stopFakes, TEXT, type Fakes } from './fixtures.js';

let fakes: Fakes;
beforeAll(async () => {
  fakes = await startFakes();
});
afterAll(() => stopFakes(fakes));

it('opens during an outage of the primary, serves from the fallback, and returns to the primary after openSeconds', async () => {
  const OUTAGE_MS = 900;
  const MIN_REQUESTS = 3;
  const gateway = await gatewayFor(fakes, {
    retry: { maxAttempts: 1, baseDelayMs: 10, maxDelayMs: 200, budgetPercent: 100 },
    circuitBreaker: { failureRatio: 0.5, minRequests: MIN_REQUESTS, windowSeconds: 10, openSeconds: 1 },
  });
  try {
    fakes.openai.script(flapping({ downMs: OUTAGE_MS, down: { kind: 'server_error', status: 500 } }));
    const client = gateway.client();
    const served: { at: number; provider: string | null }[] = [];
    const started = Date.now();
    while (Date.now() - started < 2400) {
      const answer = await ask(client, served.length % 2 === 1);
      // No request fails: before the breaker opens the fallback answers too.
      expect(answer.text).toBe(TEXT);
      served.push({ at: Date.now(), provider: answer.headers.get('x-llmroute-provider') });
      await sleep(10);
    }

    const primary = fakes.openai.attempts;
    const outageStart = primary[0]?.at ?? 0;
    const outageEnd = outageStart + OUTAGE_MS;
    const failed = primary.filter((a) => a.at < outageEnd);
    // The breaker opened after minRequests failures: the primary saw exactly those during the whole outage...
    expect(failed).toHaveLength(MIN_REQUESTS);
    const openedAt = failed.at(-1)?.at ?? 0;
    // ...although many more requests were served during it, all by the fallback.
    const duringOutage = served.filter((s) => s.at > openedAt && s.at < outageEnd);
    expect(duringOutage.length).toBeGreaterThanOrEqual(5);
    expect(duringOutage.every((s) => s.provider === 'anthropic')).toBe(true);
    // Open means no attempt at all on the primary until openSeconds passed.
    const next = primary[MIN_REQUESTS];
    expect(next).toBeDefined();
    expect((next?.at ?? 0) - openedAt).toBeGreaterThanOrEqual(990);
    expect((next?.at ?? 0) - openedAt).toBeLessThan(1600);
    // Half-open probes succeed: the primary serves again, and keeps serving.
    const back = served.filter((s) => s.at > (next?.at ?? 0));
    expect(back.length).toBeGreaterThanOrEqual(5);
    expect(back.every((s) => s.provider === 'openai')).toBe(true);

    const metrics = await gateway.scrape();
    // Every fallback answer but those of the failures that opened the breaker skipped the primary without a request.
    const byFallback = served.filter((s) => s.provider === 'anthropic').length;
    expect(metricValue(metrics, 'llmroute_upstream_attempts_total', { provider: 'openai', result: 'skipped_breaker_open' })).toBe(byFallback - MIN_REQUESTS);
    expect(metricValue(metrics, 'llmroute_upstream_attempts_total', { provider: 'openai', result: 'server_error' })).toBe(MIN_REQUESTS);
    expect(metricValue(metrics, 'llmroute_circuit_breaker_state', { provider: 'openai' })).toBe(0);
    expect(gateway.logs.some((line) => line.includes('"circuit breaker open"'))).toBe(true);
    expect(gateway.logs.some((line) => line.includes('"circuit breaker closed"'))).toBe(true);
  } finally {
    await gateway.stop();
  }
});
