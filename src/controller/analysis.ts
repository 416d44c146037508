/**
 * Rollout analysis: what the flag's variant and the baseline did over a window, measured from the gateway's
 * metrics, and a pure verdict against the flag's thresholds. The baseline is measured too, not to gate on but so a
 * message can say whether the variant is worse than what it replaces or the whole route is having a bad day.
 *
 * No data never passes: a variant nobody called, or a check Prometheus has no numbers for, is inconclusive.
 */
import type { z } from 'zod';
import { BASELINE_VARIANT, ERROR_OUTCOMES, METRIC } from '../api/metric-names.js';
import { durationToMilliseconds } from '../api/patterns.js';
import type { Analysis, Flag } from '../api/schema.js';
import type { PrometheusClient, Sample } from './prometheus.js';

export type AnalysisSpec = z.output<typeof Analysis>;

/** Whose traffic to measure. */
export interface AnalysisTarget {
  route: string;
  /** The scrape's `namespace` label: two routes of the same name in different namespaces must not mix. */
  namespace?: string;
  environment: string;
  flag: Pick<Flag, 'name' | 'set'>;
  windowSeconds: number;
}

export interface VariantMeasurement {
  /** Requests that reached a model (rejected ones say nothing about the variant). */
  requests: number;
  errorRatio: number;
  p99LatencySeconds: number;
  costPerRequestUSD: number;
}

export interface Measured {
  variant: VariantMeasurement;
  baseline: VariantMeasurement;
  windowSeconds: number;
}

export interface Verdict {
  verdict: 'pass' | 'fail' | 'inconclusive';
  reason: 'AnalysisPassed' | 'ThresholdExceeded' | 'NotEnoughRequests' | 'NoData' | 'MetricsUnavailable';
  message: string;
}

/** The shortest window worth a judgement: below a minute, a few scrapes decide and `rate()` is noise. */
const MIN_WINDOW_SECONDS = 60;

/** The window analysed after a step: the step's interval, at least a minute. */
export function analysisWindowSeconds(interval: string): number {
  return Math.max(MIN_WINDOW_SECONDS, Math.ceil(durationToMilliseconds(interval) / 1000));
}

/** Outcomes that count as requests: `rejected` (auth, budget, bad request) happens before any model is asked. */
const JUDGED_OUTCOMES = ['success', ...ERROR_OUTCOMES];

/** One query per measure, each returning a series per variant (the flag's and the baseline) at one instant. */
export function analysisQueries(target: AnalysisTarget) {
  const window = `[${target.windowSeconds}s]`;
  const models = Object.keys(target.flag.set.models ?? {});
  const selector = [
    matcher('route', '=', target.route),
    ...(target.namespace === undefined ? [] : [matcher('namespace', '=', target.namespace)]),
    matcher('environment', '=', target.environment),
    // Only the models the flag overrides: traffic of other models is identical in both variants and would dilute it.
    ...(models.length === 0 ? [] : [matcher('model', '=~', models.map(escapeRegex).join('|'))]),
    matcher('variant', '=~', [target.flag.name, BASELINE_VARIANT].map(escapeRegex).join('|')),
  ];
  const outcomes = (list: readonly string[]) => matcher('outcome', '=~', list.join('|'));
  const sel = (...extra: string[]) => `{${[...selector, ...extra].join(',')}}`;
  return {
    requests: `sum by (variant) (increase(${METRIC.requests}${sel(outcomes(JUDGED_OUTCOMES))}${window}))`,
    errors: `sum by (variant) (increase(${METRIC.requests}${sel(outcomes(ERROR_OUTCOMES))}${window}))`,
    p99LatencySeconds: `histogram_quantile(0.99, sum by (variant, le) (rate(${METRIC.requestDuration}_bucket${sel()}${window})))`,
    costUSD: `sum by (variant) (increase(${METRIC.cost}${sel()}${window}))`,
  };
}

/** Runs the analysis queries at one instant and derives the ratios. */
export async function measure(client: PrometheusClient, target: AnalysisTarget, time?: Date): Promise<Measured> {
  const queries = analysisQueries(target);
  const [requests, errors, p99, cost] = await Promise.all([
    client.query(queries.requests, time),
    client.query(queries.errors, time),
    client.query(queries.p99LatencySeconds, time),
    client.query(queries.costUSD, time),
  ]);
  const of = (variant: string): VariantMeasurement => {
    // A counter series appears only once incremented: no request series means no requests, but no error or cost
    // series next to requests means none of those happened (a free self-hosted model has no cost series).
    const count = valueOf(requests, variant) ?? 0;
    const perRequest = (total: number) => (count > 0 ? total / count : NaN);
    return {
      requests: count,
      errorRatio: perRequest(valueOf(errors, variant) ?? 0),
      p99LatencySeconds: valueOf(p99, variant) ?? NaN,
      costPerRequestUSD: perRequest(valueOf(cost, variant) ?? 0),
    };
  };
  return { variant: of(target.flag.name), baseline: of(BASELINE_VARIANT), windowSeconds: target.windowSeconds };
}

/** Measures and judges; a Prometheus failure is inconclusive (the rollout holds), never a pass. */
export async function runAnalysis(client: PrometheusClient, target: AnalysisTarget, analysis: AnalysisSpec, time?: Date): Promise<Verdict> {
  let measured: Measured;
  try {
    measured = await measure(client, target, time);
  } catch (error) {
    return { verdict: 'inconclusive', reason: 'MetricsUnavailable', message: `cannot measure the flag: ${error instanceof Error ? error.message : String(error)}` };
  }
  return judge(measured, analysis);
}

interface Check {
  name: string;
  value: number;
  baseline: number;
  max: number | undefined;
  format: (value: number) => string;
}

/** The verdict on one step: every configured threshold against the variant's numbers, with the baseline's beside them. */
export function judge(measured: Measured, analysis: AnalysisSpec): Verdict {
  const { variant, baseline } = measured;
  const over = `over ${formatWindow(measured.windowSeconds)}`;
  // `!(a >= b)` rather than `a < b`: a NaN count must hold the rollout too.
  if (!(variant.requests >= analysis.minRequests)) {
    return {
      verdict: 'inconclusive',
      reason: 'NotEnoughRequests',
      message: `${formatCount(variant.requests)} requests ${over}, ${analysis.minRequests} needed (baseline ${formatCount(baseline.requests)})`,
    };
  }

  const checks: Check[] = [
    { name: 'error ratio', value: variant.errorRatio, baseline: baseline.errorRatio, max: analysis.maxErrorRatio, format: percent },
    { name: 'p99 latency', value: variant.p99LatencySeconds, baseline: baseline.p99LatencySeconds, max: analysis.maxP99LatencySeconds, format: seconds },
    { name: 'cost per request', value: variant.costPerRequestUSD, baseline: baseline.costPerRequestUSD, max: analysis.maxCostPerRequestUSD, format: usd },
  ];
  const configured = checks.filter((check): check is Check & { max: number } => check.max !== undefined);
  const failed = configured.filter((check) => check.value > check.max);
  const missing = configured.filter((check) => Number.isNaN(check.value));

  const lines = configured.map((check) => {
    const context = `(baseline ${Number.isNaN(check.baseline) ? 'no data' : check.format(check.baseline)})`;
    if (Number.isNaN(check.value)) return `${check.name}: no data, max ${check.format(check.max)} ${context}`;
    return `${check.name} ${check.format(check.value)} ${check.value > check.max ? '>' : '<='} max ${check.format(check.max)} ${context}`;
  });
  const message = [...lines, `${formatCount(variant.requests)} requests ${over}`].join('; ');

  // A failed check is decisive even when another has no data: the variant is already known to be bad.
  if (failed.length > 0) return { verdict: 'fail', reason: 'ThresholdExceeded', message };
  if (missing.length > 0) return { verdict: 'inconclusive', reason: 'NoData', message };
  return { verdict: 'pass', reason: 'AnalysisPassed', message: configured.length > 0 ? message : `no thresholds set; ${message}` };
}

/** A PromQL label matcher; the value is a Go string literal, so backslashes and quotes are escaped. */
function matcher(label: string, op: '=' | '=~', value: string): string {
  return `${label}${op}${JSON.stringify(value)}`;
}

/** Model names contain dots (`gpt-4.1`), which in a regex match any character. */
function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function valueOf(samples: Sample[], variant: string): number | undefined {
  return samples.find((sample) => sample.labels.variant === variant)?.value;
}

// histogram_quantile() answers +Inf when the quantile lies beyond the largest bucket; Prometheus spells it so.
const significant = (value: number) => (value === Infinity ? '+Inf' : String(Number(value.toPrecision(3))));
const percent = (value: number) => `${significant(value * 100)}%`;
const seconds = (value: number) => (Number.isFinite(value) ? `${significant(value)}s` : significant(value));
const usd = (value: number) => `$${significant(value)}`;
// increase() extrapolates to the window's edges, so counts come back fractional; flooring keeps "49 requests, 50
// needed" true for 49.6.
const formatCount = (value: number) => (Number.isFinite(value) ? String(Math.floor(value)) : 'an unknown number of');

function formatWindow(totalSeconds: number): string {
  if (totalSeconds % 3600 === 0) return `${totalSeconds / 3600}h`;
  if (totalSeconds % 60 === 0) return `${totalSeconds / 60}m`;
  return `${totalSeconds}s`;
}
