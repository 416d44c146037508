import { describe, expect, it } from '@jest/globals';
import { Analysis } from '../../src/api/schema.js';
import {
  analysisQueries,
  analysisWindowSeconds,
  judge,
  measure,
  runAnalysis,
  type AnalysisTarget,
  type Measured,
  type VariantMeasurement,
} from '../../src/controller/analysis.js';
import type { PrometheusClient, Sample } from '../../src/controller/prometheus.js';

const target: AnalysisTarget = {
  route: 'support-bot',
  namespace: 'team-a',
  environment: 'production',
  flag: { name: 'canary', set: { models: { chat: { pin: 'gpt-4.1-2025-04-14' }, 'gpt-4.1': { maxOutputTokens: 512 } } } },
  windowSeconds: 300,
};

const thresholds = Analysis.parse({ maxErrorRatio: 0.02, maxP99LatencySeconds: 2, maxCostPerRequestUSD: 0.01, minRequests: 50 });

const healthy: VariantMeasurement = { requests: 812.4, errorRatio: 0.004, p99LatencySeconds: 1.23, costPerRequestUSD: 0.0031 };
const baseline: VariantMeasurement = { requests: 7311, errorRatio: 0.005, p99LatencySeconds: 1.1, costPerRequestUSD: 0.0029 };
const measured = (variant: Partial<VariantMeasurement>, base: Partial<VariantMeasurement> = {}): Measured => ({
  variant: { ...healthy, ...variant },
  baseline: { ...baseline, ...base },
  windowSeconds: 300,
});

describe('analysisWindowSeconds', () => {
  it('is the step interval, but never under a minute', () => {
    expect(analysisWindowSeconds('5m')).toBe(300);
    expect(analysisWindowSeconds('1h30m')).toBe(5400);
    expect(analysisWindowSeconds('30s')).toBe(60);
  });
});

describe('analysisQueries', () => {
  it('selects the route, namespace, environment, the overridden models (regex-escaped) and both variants', () => {
    const sel = 'route="support-bot",namespace="team-a",environment="production",model=~"chat|gpt-4\\\\.1",variant=~"canary|baseline"';
    expect(analysisQueries(target)).toEqual({
      requests: `sum by (variant) (increase(llmroute_requests_total{${sel},outcome=~"success|error|timeout|truncated"}[300s]))`,
      errors: `sum by (variant) (increase(llmroute_requests_total{${sel},outcome=~"error|timeout|truncated"}[300s]))`,
      p99LatencySeconds: `histogram_quantile(0.99, sum by (variant, le) (rate(llmroute_request_duration_seconds_bucket{${sel}}[300s])))`,
      costUSD: `sum by (variant) (increase(llmroute_cost_usd_total{${sel}}[300s]))`,
    });
  });

  it('a flag that overrides no model compares all traffic; no namespace means no namespace matcher', () => {
    const queries = analysisQueries({ route: 'r', environment: 'dev', flag: { name: 'f', set: {} }, windowSeconds: 60 });
    expect(queries.requests).toBe('sum by (variant) (increase(llmroute_requests_total{route="r",environment="dev",variant=~"f|baseline",outcome=~"success|error|timeout|truncated"}[60s]))');
  });
});

describe('judge', () => {
  it('passes when every threshold holds, naming each number, its threshold and the baseline', () => {
    expect(judge(measured({}), thresholds)).toEqual({
      verdict: 'pass',
      reason: 'AnalysisPassed',
      message:
        'error ratio 0.4% <= max 2% (baseline 0.5%); p99 latency 1.23s <= max 2s (baseline 1.1s); cost per request $0.0031 <= max $0.01 (baseline $0.0029); 812 requests over 5m',
    });
  });

  it('fails when one threshold is exceeded, and says which', () => {
    const verdict = judge(measured({ errorRatio: 0.041 }), thresholds);
    expect(verdict).toMatchObject({ verdict: 'fail', reason: 'ThresholdExceeded' });
    expect(verdict.message).toContain('error ratio 4.1% > max 2% (baseline 0.5%)');
    expect(verdict.message).toContain('p99 latency 1.23s <= max 2s');
  });

  it('a value equal to its threshold passes', () => {
    expect(judge(measured({ p99LatencySeconds: 2 }), thresholds).verdict).toBe('pass');
  });

  it('a p99 beyond the largest histogram bucket (+Inf) fails', () => {
    const verdict = judge(measured({ p99LatencySeconds: Infinity }), thresholds);
    expect(verdict.verdict).toBe('fail');
    expect(verdict.message).toContain('p99 latency +Inf > max 2s');
  });

  it('fewer requests than minRequests is inconclusive, however good the numbers', () => {
    expect(judge(measured({ requests: 49.6 }), thresholds)).toEqual({
      verdict: 'inconclusive',
      reason: 'NotEnoughRequests',
      message: '49 requests over 5m, 50 needed (baseline 7311)',
    });
  });

  it('no data is never a pass: an unknown request count or a check without numbers is inconclusive', () => {
    expect(judge(measured({ requests: NaN }), thresholds)).toMatchObject({ verdict: 'inconclusive', reason: 'NotEnoughRequests' });
    const noLatency = judge(measured({ p99LatencySeconds: NaN }, { p99LatencySeconds: NaN }), thresholds);
    expect(noLatency).toMatchObject({ verdict: 'inconclusive', reason: 'NoData' });
    expect(noLatency.message).toContain('p99 latency: no data, max 2s (baseline no data)');
  });

  it('a known failure wins over a check without data', () => {
    expect(judge(measured({ errorRatio: 0.5, p99LatencySeconds: NaN }), thresholds).verdict).toBe('fail');
  });

  it('checks only the thresholds that are set; with none, enough requests pass', () => {
    const onlyErrors = Analysis.parse({ maxErrorRatio: 0.02, minRequests: 50 });
    // Latency and cost have no data, but nobody asked about them.
    expect(judge(measured({ p99LatencySeconds: NaN, costPerRequestUSD: NaN }), onlyErrors)).toMatchObject({ verdict: 'pass' });
    expect(judge(measured({}), Analysis.parse({}))).toEqual({ verdict: 'pass', reason: 'AnalysisPassed', message: 'no thresholds set; 812 requests over 5m' });
  });
});

/** A Prometheus stand-in that answers each analysis query with the given samples. */
function fakePrometheus(answers: Partial<Record<keyof ReturnType<typeof analysisQueries>, Sample[]>>): PrometheusClient & { asked: string[] } {
  const queries = analysisQueries(target);
  const asked: string[] = [];
  return {
    asked,
    async query(promql) {
      asked.push(promql);
      const key = (Object.keys(queries) as (keyof typeof queries)[]).find((name) => queries[name] === promql);
      if (!key) throw new Error(`unexpected query ${promql}`);
      return answers[key] ?? [];
    },
  };
}

const sample = (variant: string, value: number): Sample => ({ labels: { variant }, value });

describe('measure', () => {
  it('derives ratios per variant from the four queries', async () => {
    const client = fakePrometheus({
      requests: [sample('canary', 200), sample('baseline', 1000)],
      errors: [sample('canary', 10), sample('baseline', 5)],
      p99LatencySeconds: [sample('canary', 1.5), sample('baseline', 0.9)],
      costUSD: [sample('canary', 2), sample('baseline', 3)],
    });
    expect(await measure(client, target)).toEqual({
      variant: { requests: 200, errorRatio: 0.05, p99LatencySeconds: 1.5, costPerRequestUSD: 0.01 },
      baseline: { requests: 1000, errorRatio: 0.005, p99LatencySeconds: 0.9, costPerRequestUSD: 0.003 },
      windowSeconds: 300,
    });
    expect(client.asked).toHaveLength(4);
  });

  it('missing error and cost series next to requests mean none; missing requests mean no data', async () => {
    const client = fakePrometheus({ requests: [sample('baseline', 1000)], p99LatencySeconds: [sample('baseline', 0.9)] });
    const result = await measure(client, target);
    expect(result.baseline).toEqual({ requests: 1000, errorRatio: 0, p99LatencySeconds: 0.9, costPerRequestUSD: 0 });
    expect(result.variant.requests).toBe(0);
    expect(result.variant.errorRatio).toBeNaN();
    expect(result.variant.p99LatencySeconds).toBeNaN();
    expect(result.variant.costPerRequestUSD).toBeNaN();
  });

  it('a variant Prometheus knows nothing about is inconclusive, even with no minimum to meet', async () => {
    const verdict = await runAnalysis(fakePrometheus({}), target, Analysis.parse({ maxErrorRatio: 0.02, minRequests: 1 }));
    expect(verdict).toEqual({ verdict: 'inconclusive', reason: 'NotEnoughRequests', message: '0 requests over 5m, 1 needed (baseline 0)' });
  });

  it('a Prometheus failure is inconclusive and carries the error', async () => {
    const broken: PrometheusClient = {
      query: async (promql) => {
        throw new Error(`Prometheus answered HTTP 503: unavailable (query: ${promql})`);
      },
    };
    const verdict = await runAnalysis(broken, target, thresholds);
    expect(verdict.verdict).toBe('inconclusive');
    expect(verdict.reason).toBe('MetricsUnavailable');
    expect(verdict.message).toMatch(/^cannot measure the flag: Prometheus answered HTTP 503: unavailable \(query: .*llmroute_requests_total/);
  });
});
