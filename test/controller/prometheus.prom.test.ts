/**
 * Rollout analysis and spend against a real Prometheus (the Debian package's binary), scraping a stand-in for the
 * gateway's /metrics that plays ~12 s of known traffic: a healthy flag, a bad one, a quiet one, and decoy series
 * (another model, environment, route) that a wrong selector would pick up. The pure spend functions are tested
 * here too, beside the queries they feed, outside the describe that needs Prometheus.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { METRIC } from '../../src/api/metric-names.js';
import { Analysis, Budget } from '../../src/api/schema.js';
import { runAnalysis, type AnalysisTarget } from '../../src/controller/analysis.js';
import { prometheusClient, PrometheusQueryError, type PrometheusClient } from '../../src/controller/prometheus.js';
import { budgetCondition, measureSpend, spendQueries, utcDayStart, utcMonthStart } from '../../src/controller/spend.js';
import { startMetricsExporter, type MetricsExporter } from '../support/metrics-exporter.js';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.js';

const TICK_MS = 250;
const DRIVE_MS = 12_000;
const WINDOW_SECONDS = 10;

const route = { route: 'support-bot', namespace: 'team-a', environment: 'production' };
const flag = (name: string): AnalysisTarget['flag'] => ({ name, set: { models: { 'gpt-4.1': { maxOutputTokens: 512 } } } });
const thresholds = Analysis.parse({ maxErrorRatio: 0.05, maxP99LatencySeconds: 1, maxCostPerRequestUSD: 0.005, minRequests: 50 });

/** Per tick: requests by outcome, the latency every judged request takes, and USD spent. */
interface Traffic {
  labels: { route: string; environment: string; model: string; variant: string };
  outcomes: Partial<Record<'success' | 'error' | 'timeout' | 'rejected', number>>;
  latencySeconds: number;
  costUSD: number;
  /** Only every n-th tick, for a trickle. */
  every?: number;
}

const production = (model: string, variant: string) => ({ route: 'support-bot', environment: 'production', model, variant });
const TRAFFIC: Traffic[] = [
  { labels: production('gpt-4.1', 'baseline'), outcomes: { success: 39, error: 1 }, latencySeconds: 0.3, costUSD: 0.08 },
  // 2% errors, fast, $0.001 a request; rejected requests count for nothing.
  { labels: production('gpt-4.1', 'good'), outcomes: { success: 49, timeout: 1, rejected: 2 }, latencySeconds: 0.15, costUSD: 0.05 },
  // 30% errors, slow, $0.01 a request (it would be $0.0091 if the rejected one were counted).
  { labels: production('gpt-4.1', 'bad'), outcomes: { success: 7, error: 2, timeout: 1, rejected: 1 }, latencySeconds: 3, costUSD: 0.1 },
  { labels: production('gpt-4.1', 'quiet'), outcomes: { success: 1 }, latencySeconds: 0.15, costUSD: 0.001, every: 4 },
  // Decoys: an unescaped `gpt-4.1` regex would match this model; the others differ by environment and route.
  { labels: production('gpt-4x1', 'good'), outcomes: { error: 500 }, latencySeconds: 9, costUSD: 50 },
  { labels: { route: 'support-bot', environment: 'staging', model: 'gpt-4.1', variant: 'good' }, outcomes: { error: 500 }, latencySeconds: 9, costUSD: 50 },
  { labels: { route: 'other-bot', environment: 'production', model: 'gpt-4.1', variant: 'good' }, outcomes: { error: 500 }, latencySeconds: 9, costUSD: 50 },
];

/** Plays one tick of every traffic source (times 0 creates the series at zero, as a gateway has them at start). */
function play(exporter: MetricsExporter, tick: number, times: 0 | 1): number {
  let productionCost = 0;
  for (const source of TRAFFIC) {
    if (times === 1 && tick % (source.every ?? 1) !== 0) continue;
    let judged = 0;
    for (const [outcome, count] of Object.entries(source.outcomes)) {
      exporter.inc(METRIC.requests, { ...source.labels, client: 'web', outcome }, count * times);
      if (outcome !== 'rejected') judged += count;
    }
    exporter.observe(METRIC.requestDuration, source.labels, source.latencySeconds, judged * times);
    exporter.inc(METRIC.cost, { ...source.labels, client: 'web', provider: 'openai' }, source.costUSD * times);
    if (source.labels.route === 'support-bot' && source.labels.environment === 'production') productionCost += source.costUSD * times;
  }
  return productionCost;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Everything below shares one Prometheus and one exporter; if Prometheus is missing, every test here fails. */
describe('with a real Prometheus', () => {
  let exporter: MetricsExporter | undefined;
  let prometheus: PrometheusServer | undefined;
  let client: PrometheusClient;
  let spentUSD = 0;
  let drivenFrom: Date;

  beforeAll(async () => {
    exporter = await startMetricsExporter();
    play(exporter, 0, 0);
    prometheus = await startPrometheus([{ address: exporter.address, labels: { namespace: 'team-a' } }]);
    client = prometheusClient({ url: prometheus.url, timeoutMs: 5000 });
    await until('the first scrape', async () => (await client.query(`${METRIC.cost}{environment="production",variant="good"}`)).length > 0, 10_000);

    drivenFrom = new Date();
    for (let tick = 0; tick * TICK_MS < DRIVE_MS; tick++) {
      spentUSD += play(exporter, tick, 1);
      await new Promise((resolve) => setTimeout(resolve, TICK_MS));
    }
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop();
    await exporter?.close();
  });

  describe('rollout analysis against Prometheus', () => {
    const analyse = (name: string) => runAnalysis(client, { ...route, flag: flag(name), windowSeconds: WINDOW_SECONDS }, thresholds);

    it('passes the healthy flag, decoys notwithstanding', async () => {
      const verdict = await analyse('good');
      expect(verdict).toMatchObject({ verdict: 'pass', reason: 'AnalysisPassed' });
      expect(verdict.message).toMatch(
        /^error ratio 2% <= max 5% \(baseline 2\.5%\); p99 latency 0\.199s <= max 1s \(baseline 0\.398s\); cost per request \$0\.001 <= max \$0\.005 \(baseline \$0\.002\); \d+ requests over 10s$/,
      );
    });

    it('fails the bad flag and names every number against its threshold and the baseline', async () => {
      const verdict = await analyse('bad');
      expect(verdict).toMatchObject({ verdict: 'fail', reason: 'ThresholdExceeded' });
      expect(verdict.message).toMatch(
        /^error ratio 30% > max 5% \(baseline 2\.5%\); p99 latency 3\.18s > max 1s \(baseline 0\.398s\); cost per request \$0\.01 > max \$0\.005 \(baseline \$0\.002\); \d+ requests over 10s$/,
      );
    });

    it('holds a flag with too little traffic, and one with none', async () => {
      expect(await analyse('quiet')).toMatchObject({ verdict: 'inconclusive', reason: 'NotEnoughRequests', message: expect.stringMatching(/^\d+ requests over 10s, 50 needed \(baseline \d+\)$/) });
      expect(await analyse('ghost')).toMatchObject({ verdict: 'inconclusive', reason: 'NotEnoughRequests', message: expect.stringMatching(/^0 requests over 10s, 50 needed/) });
    });

    it('holds when Prometheus cannot be reached, saying why', async () => {
      const closed = await closedPort();
      const verdict = await runAnalysis(prometheusClient({ url: `http://127.0.0.1:${closed}` }), { ...route, flag: flag('good'), windowSeconds: 10 }, thresholds);
      expect(verdict).toMatchObject({ verdict: 'inconclusive', reason: 'MetricsUnavailable' });
      expect(verdict.message).toContain(`Prometheus at http://127.0.0.1:${closed} is unreachable: fetch failed: ECONNREFUSED (query: `);
    });
  });

  describe('spend against Prometheus', () => {
    it('adds up the environment\'s USD for the UTC day and month, and nothing of other environments or routes', async () => {
      const now = new Date();
      const spend = await measureSpend(client, route, now);
      // increase() extrapolates a little past the last scrape; the decoys would add thousands of dollars.
      const near = (value: number) => expect(Math.abs(value - spentUSD) / spentUSD).toBeLessThan(0.1);
      // A run that straddles midnight UTC (or a month's end) sees only part of its traffic in the new period.
      if (utcDayStart(now) <= drivenFrom) near(spend.dailyUSD);
      else expect(spend.dailyUSD).toBeLessThan(spentUSD * 1.1);
      if (utcMonthStart(now) <= drivenFrom) near(spend.monthlyUSD);
      else expect(spend.monthlyUSD).toBeLessThan(spentUSD * 1.1);

      const hard = budgetCondition(spend, Budget.parse({ daily: 1, onExhausted: 'reject' }), now);
      expect(hard).toMatchObject({ type: 'BudgetExceeded', status: 'True', reason: 'BudgetExhausted' });
      expect(hard.message).toMatch(/^daily budget: \$\d+\.\d\d of \$1\.00 spent, resets at \d{4}-\d\d-\d\dT00:00:00Z; requests are rejected until /);
    });
  });

  describe('prometheusClient', () => {
    it('returns scalars and Prometheus\' special floats as numbers', async () => {
      expect(await client.query('1 + 1')).toEqual([{ labels: {}, value: 2 }]);
      expect((await client.query('scalar(vector(1) / 0)'))[0]?.value).toBe(Infinity);
      expect((await client.query('scalar(vector(0) / 0)'))[0]?.value).toBeNaN();
    });

    it('keeps Prometheus\' own error message, the HTTP status and the query', async () => {
      const error = await client.query('sum(rate(x[5m])').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PrometheusQueryError);
      expect(error).toMatchObject({ status: 400, query: 'sum(rate(x[5m])' });
      expect((error as Error).message).toMatch(/^Prometheus answered HTTP 400: bad_data: .*parse error.* \(query: sum\(rate\(x\[5m\]\)\)$/);
    });

    it('refuses a range vector, which no caller can use', async () => {
      await expect(client.query('up[5s]')).rejects.toThrow('expected an instant vector or a scalar, Prometheus returned a matrix result (query: up[5s])');
    });

    it('gives up after its timeout', async () => {
      const silent = await new Promise<Server>((resolve) => {
        const server = createServer(() => undefined);
        server.listen(0, '127.0.0.1', () => resolve(server));
      });
      try {
        const { port } = silent.address() as AddressInfo;
        await expect(prometheusClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 300 }).query('up')).rejects.toThrow(
          `Prometheus at http://127.0.0.1:${port} did not answer within 300 ms (query: up)`,
        );
      } finally {
        silent.closeAllConnections();
        silent.close();
      }
    });
  });
});

describe('spendQueries', () => {
  it('reads the increase since the start of the UTC day and month, at least one second', () => {
    expect(spendQueries(route, new Date('2025-03-15T10:30:00.500Z'))).toEqual({
      daily: 'sum(increase(llmroute_cost_usd_total{route="support-bot",namespace="team-a",environment="production"}[37801s]))',
      monthly: 'sum(increase(llmroute_cost_usd_total{route="support-bot",namespace="team-a",environment="production"}[1247401s]))',
    });
    expect(spendQueries({ route: 'r', environment: 'dev' }, new Date('2025-03-01T00:00:00Z')).daily).toBe('sum(increase(llmroute_cost_usd_total{route="r",environment="dev"}[1s]))');
  });
});

describe('budgetCondition', () => {
  const now = new Date('2025-12-15T10:30:00Z');

  it('is False within budget, naming each budget, its spend, its limit and its reset', () => {
    expect(budgetCondition({ dailyUSD: 3.2, monthlyUSD: 40 }, Budget.parse({ daily: 10, monthly: 300 }), now)).toEqual({
      type: 'BudgetExceeded',
      status: 'False',
      reason: 'WithinBudget',
      message: 'daily budget: $3.20 of $10.00 spent, resets at 2025-12-16T00:00:00Z; monthly budget: $40.00 of $300.00 spent, resets at 2026-01-01T00:00:00Z',
    });
  });

  it('is True once a reject budget is spent (reaching the limit counts), until the last exhausted budget resets', () => {
    expect(budgetCondition({ dailyUSD: 10, monthlyUSD: 40 }, Budget.parse({ daily: 10, monthly: 300 }), now)).toEqual({
      type: 'BudgetExceeded',
      status: 'True',
      reason: 'BudgetExhausted',
      message: 'daily budget: $10.00 of $10.00 spent, resets at 2025-12-16T00:00:00Z; requests are rejected until 2025-12-16T00:00:00Z',
    });
    const both = budgetCondition({ dailyUSD: 12, monthlyUSD: 301 }, Budget.parse({ daily: 10, monthly: 300 }), now);
    expect(both.status).toBe('True');
    expect(both.message).toContain('monthly budget: $301.00 of $300.00 spent');
    expect(both.message).toMatch(/requests are rejected until 2026-01-01T00:00:00Z$/);
  });

  it('a spent degrade budget is not BudgetExceeded, but says where requests go', () => {
    expect(budgetCondition({ dailyUSD: 11, monthlyUSD: 11 }, Budget.parse({ daily: 10, onExhausted: 'degrade', degradeTo: 'mini' }), now)).toEqual({
      type: 'BudgetExceeded',
      status: 'False',
      reason: 'DegradedToCheaperModel',
      message: 'daily budget: $11.00 of $10.00 spent, resets at 2025-12-16T00:00:00Z; requests are served by mini until 2025-12-16T00:00:00Z',
    });
  });

  it('without limits it is False; without a measurement it is Unknown', () => {
    expect(budgetCondition({ dailyUSD: 1, monthlyUSD: 1 }, undefined, now)).toMatchObject({ status: 'False', reason: 'NoBudget' });
    expect(budgetCondition({ dailyUSD: 1, monthlyUSD: 1 }, Budget.parse({ alertAt: [0.5] }), now)).toMatchObject({ status: 'False', reason: 'NoBudget' });
    expect(budgetCondition(undefined, Budget.parse({ daily: 10 }), now)).toMatchObject({ status: 'Unknown', reason: 'SpendUnknown' });
  });
});

/** A loopback port nobody listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
