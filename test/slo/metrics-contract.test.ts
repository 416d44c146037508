/**
 * The metrics contract against a running gateway (issue 7, done-when: "a test scrapes a gateway and checks the names
 * and labels against docs/metrics.md"). A real gateway serves traffic that touches most of its metrics (a request that
 * fails on every provider, a quota-exhausted primary answered by a fallback, a rejected key, a stream with malformed
 * events and a drifted model, a rejected config, then requests until the budget crosses its alertAt and refuses them
 * with 429 budget_exceeded), and its /metrics text is checked against the Gateway
 * table of docs/metrics.md:
 *
 * - every `llmroute_` family it exposes is documented (not as planned), with the documented type, and the labels of
 *   its series are the documented ones plus the default labels `route` and `environment` (histograms add `le`);
 * - every gateway metric the table lists as produced is exposed;
 * - label values are bounded: where the code fixes a label's values, the series use only those; key fingerprints
 *   have their documented shape; route and environment are the gateway's.
 *
 * (test/render/alerts.test.ts checks the same tables against the registries in-process; this proves the endpoint.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { metricValue, type TestGateway } from '../support/gateway.js';
import { LABEL_VALUES, documentedMetrics, documents, type DocumentedMetric } from '../support/promql.js';
import { parseExposition, type Family } from '../support/exposition.js';
import { CLAUDE, GPT, KEYS, TIMEOUTS, TIGHT, USER, gatewayFor, startFakes, stopFakes, type Fakes } from '../gateway/e2e/fixtures.js';

const DEFAULT_LABELS = ['route', 'environment'];
/** prom-client's default metrics: documented by prefix, their labels are prom-client's. */
const DEFAULT_METRIC = /^llmroute_gateway_(process|nodejs)_/;

let fakes: Fakes;
let gateway: TestGateway;
let families: Map<string, Family>;
let scraped: string;
let documented: DocumentedMetric[];
const refusals: number[] = [];

beforeAll(async () => {
  fakes = await startFakes();
  gateway = await gatewayFor(fakes, {
    models: [{ name: 'chat', pin: GPT, maxOutputTokens: 50, timeouts: { ...TIMEOUTS, ...TIGHT }, fallback: [{ provider: 'openai' }, { provider: 'anthropic', model: CLAUDE }] }],
    prices: { [GPT]: { input: 1, output: 20 }, [CLAUDE]: { input: 1, output: 20 } },
    // Two keys for the primary: the first is rejected, so a key failure is counted with its fingerprint.
    keys: { openai: ['sk-revoked-0123456789abcdef', KEYS.openai], anthropic: [KEYS.anthropic], azure: [KEYS.azure] },
    // About $0.001 reserved per request and $0.00013 spent: a handful of answers, then 429 budget_exceeded.
    budget: { daily: 0.0015, alertAt: [0.2], onExhausted: 'reject' },
    reloadIntervalMs: 100,
  });
  const client = gateway.client();
  const status = (error: unknown) => (error as { status?: number }).status ?? 0;
  // 1. Every provider fails: an error outcome.
  fakes.openai.script({ kind: 'server_error' });
  fakes.anthropic.script({ kind: 'server_error' });
  await client.chat.completions.create({ model: 'chat', messages: USER }).then(
    () => expect('the request to fail').toBe('failed'),
    (error: unknown) => expect(status(error)).toBeGreaterThanOrEqual(500),
  );
  // 2. The revoked key is refused (the next one answers), then the primary has no quota: a fallback answers.
  fakes.openai.script((attempt) => (attempt.key === KEYS.openai ? { kind: 'quota_exhausted' } : { kind: 'auth_failed' }));
  fakes.anthropic.reset();
  await client.chat.completions.create({ model: 'chat', messages: USER });
  // 3. A stream, answered by the fallback too (the primary cools down), with garbage between its events and another
  // model than the pinned one: malformed events and model drift.
  fakes.anthropic.script({ kind: 'malformed_sse', model: 'claude-3-haiku-20240307' });
  const stream = await client.chat.completions.create({ model: 'chat', messages: USER, stream: true });
  for await (const chunk of stream) void chunk;
  fakes.anthropic.reset();
  // 4. A config the gateway rejects (it keeps serving the previous one).
  await gateway.writeConfig('{"version": "not a gateway config"}');
  for (let i = 0; i < 50 && !(await gateway.scrape()).includes('llmroute_config_reloads_total{result="failure"'); i++) await sleep(100);
  // 5. Until the budget refuses, crossing its alertAt on the way.
  for (let i = 0; i < 20 && refusals.length < 2; i++) {
    await client.chat.completions.create({ model: 'chat', messages: USER }).catch((error: unknown) => void refusals.push(status(error)));
  }
  scraped = await gateway.scrape();
  families = parseExposition(scraped);
  documented = await documentedMetrics();
}, 30_000);

afterAll(async () => {
  await gateway?.stop();
  await stopFakes(fakes);
});

describe("a running gateway's /metrics against docs/metrics.md", () => {
  it('saw the traffic it was meant to: a failure, a fallback, a rejected key and budget refusals', () => {
    expect(refusals).toEqual([429, 429]);
    const has = (name: string, labels: Record<string, string>) => families.get(name)?.series.some((s) => Object.entries(labels).every(([k, v]) => s[k] === v));
    expect(has('llmroute_requests_total', { outcome: 'error' })).toBe(true);
    expect(has('llmroute_fallbacks_total', { depth: '1' })).toBe(true);
    expect(has('llmroute_upstream_attempts_total', { result: 'quota_exhausted' })).toBe(true);
    expect(has('llmroute_key_failures_total', { provider: 'openai' })).toBe(true);
    expect(has('llmroute_budget_rejected_requests_total', { scope: 'environment', window: 'daily' })).toBe(true);
  });

  it('reads the budget gauges from the ledger (what the cost counters counted), and reports the rejected config', () => {
    const spent = metricValue(scraped, 'llmroute_cost_usd_total') + metricValue(scraped, 'llmroute_wasted_cost_usd_total');
    const daily = { scope: 'environment', window: 'daily' };
    expect(spent).toBeGreaterThan(0);
    expect(metricValue(scraped, 'llmroute_budget_spent_usd', daily)).toBeCloseTo(spent, 6);
    expect(metricValue(scraped, 'llmroute_budget_spent_usd', { scope: 'environment', window: 'monthly' })).toBeCloseTo(spent, 6);
    expect(metricValue(scraped, 'llmroute_budget_reserved_usd', daily)).toBe(0);
    expect(metricValue(scraped, 'llmroute_budget_remaining_usd', daily)).toBeCloseTo(0.0015 - spent, 6);
    // The budget sets no monthly limit: nothing is left of it to report.
    expect(families.get('llmroute_budget_remaining_usd')?.series.map((s) => s.window)).toEqual(['daily']);
    // The broken config is still in place: the last read was rejected, and the config in use is the first one.
    expect(metricValue(scraped, 'llmroute_config_last_reload_successful')).toBe(0);
    expect(Date.now() / 1000 - metricValue(scraped, 'llmroute_config_last_reload_success_timestamp_seconds')).toBeGreaterThan(0);
    expect(Date.now() / 1000 - metricValue(scraped, 'llmroute_config_last_reload_success_timestamp_seconds')).toBeLessThan(60);
  });

  it('documents every llmroute_ family it exposes, with the type and, on its series, the labels (plus route and environment)', () => {
    const exposed = [...families.values()].filter((f) => f.name.startsWith('llmroute_'));
    expect(exposed.length).toBeGreaterThan(20);
    const withSeries: string[] = [];
    for (const family of exposed) {
      const doc = documented.find((d) => d.section === 'Gateway' && documents(d, family.name));
      expect({ metric: family.name, documented: Boolean(doc) }).toEqual({ metric: family.name, documented: true });
      if (DEFAULT_METRIC.test(family.name)) continue;
      expect({ metric: family.name, type: family.type }).toEqual({ metric: family.name, type: doc!.type });
      for (const series of family.series) {
        const labels = Object.keys(series).filter((l) => l !== 'le' || family.type !== 'histogram');
        expect({ metric: family.name, labels: labels.sort() }).toEqual({ metric: family.name, labels: [...doc!.labels, ...DEFAULT_LABELS].sort() });
      }
      if (family.series.length) withSeries.push(family.name);
    }
    // Labels were compared on series; a family without series yet shows none. The traffic above reaches most.
    expect(withSeries).toEqual(expect.arrayContaining(['llmroute_model_drift_total', 'llmroute_malformed_events_total', 'llmroute_config_reloads_total', 'llmroute_budget_threshold_crossed_total', 'llmroute_key_failures_total']));
    expect(withSeries.length).toBeGreaterThanOrEqual(18);
  });

  it('exposes every gateway metric docs/metrics.md lists as produced', () => {
    const produced = documented.filter((d) => d.section === 'Gateway' && d.name !== 'up');
    expect(produced.length).toBeGreaterThan(20);
    const names = [...families.keys()];
    const missing = produced.filter((d) => !names.some((n) => documents(d, n))).map((d) => d.name);
    expect(missing).toEqual([]);
  });

  it('gives bounded label values: the code\'s fixed lists, fingerprints never keys, its own route and environment', () => {
    for (const family of families.values()) {
      if (!family.name.startsWith('llmroute_')) continue;
      for (const series of family.series) {
        expect({ metric: family.name, route: series.route, environment: series.environment }).toEqual({ metric: family.name, route: 'e2e', environment: 'test' });
        for (const [label, values] of Object.entries(LABEL_VALUES[family.name] ?? {})) {
          if (series[label] !== undefined) expect({ metric: family.name, [label]: values.includes(series[label]) }).toEqual({ metric: family.name, [label]: true });
        }
        if (series.fingerprint !== undefined) expect(series.fingerprint).toMatch(/^sha256:[0-9a-f]{12}$/);
        for (const value of Object.values(series)) for (const key of ['sk-revoked-0123456789abcdef', KEYS.openai, KEYS.anthropic]) expect(value).not.toContain(key);
      }
    }
  });
});
