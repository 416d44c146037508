/**
 * Progressive rollouts and budget status end to end: the controller against the real API server, with a real
 * Prometheus (Debian's binary) scraping a stand-in for the gateways' /metrics that the test drives. The series carry
 * every label the controller's queries filter on (route, namespace, environment, model, variant, outcome) plus the
 * ones the gateway also exports (client, provider).
 *
 * Analysis looks back at least 60 s (analysisWindowSeconds), so waiting for a fresh window per step would make this
 * test minutes long. Instead traffic starts before the routes exist and keeps flowing: every window the controller
 * asks about already holds enough requests, whose ratios are what the test feeds. Steps then advance on the interval
 * alone (2 s), and each route's fate is decided by its own traffic:
 *   good  - healthy canary: 10% → 50% → 100%, Succeeded; it also has a daily budget that its cost counter overruns;
 *   bad   - half the canary's requests fail: rolled back to 0% at the first analysis, Degraded=RolloutAborted;
 *   held  - healthy, but annotated `pause` from the start: held at 10%, then `promote` sends it to 100%.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { parse, stringify } from 'yaml';
import { METRIC } from '../../src/api/metric-names.js';
import type { LLMRouteStatus } from '../../src/api/schema.js';
import { startController, type RunningController } from '../../src/controller/controller.js';
import { KubeClient } from '../../src/controller/kube-client.js';
import { resourceByKind, resourceOf, resourcePath } from '../../src/controller/resources.js';
import { createLogger } from '../../src/log.js';
import { startMetricsExporter, type MetricsExporter } from '../support/metrics-exporter.js';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.js';
import { createNamespace, kubeConfig, kubectlOk, waitFor } from '../k8s/cluster.js';
import { freePort } from '../support/ports.js';

jest.setTimeout(60_000);

const ROUTES = ['good', 'bad', 'held'] as const;
type RouteName = (typeof ROUTES)[number];
const FLAG = 'canary';
const INTERVAL_MS = 2000;
const TICK_MS = 250;
const DAILY_BUDGET = 20;

/** Per tick and route: requests by variant and outcome, and USD per variant. Latency is 0.3 s for every request. */
const TRAFFIC: Record<RouteName, { canary: Record<string, number>; baseline: Record<string, number>; costUSD: number }> = {
  good: { canary: { success: 3 }, baseline: { success: 7 }, costUSD: 0.5 },
  bad: { canary: { success: 2, error: 2 }, baseline: { success: 7 }, costUSD: 0 },
  held: { canary: { success: 3 }, baseline: { success: 7 }, costUSD: 0 },
};
const LATENCY_SECONDS = 0.3;

let admin: KubeClient;
let namespace: string;
let exporter: MetricsExporter | undefined;
let prometheus: PrometheusServer | undefined;
let controller: RunningController | undefined;
let metricsPort: number;
let feeding: NodeJS.Timeout | undefined;
let polling: NodeJS.Timeout | undefined;
const logs: string[] = [];
let spentUSD = 0;
/** Every distinct (status, ConfigMap) percentage seen per route, in order. */
const history: Record<RouteName, { status: string[]; configMap: number[] }> = { good: { status: [], configMap: [] }, bad: { status: [], configMap: [] }, held: { status: [], configMap: [] } };

type LiveRoute = { metadata: { generation: number }; status?: LLMRouteStatus };
const getRoute = (name: RouteName) => admin.get<LiveRoute>(resourcePath(resourceOf('llmroute.dev/v1alpha1', 'LLMRoute'), namespace, name));
const condition = (route: LiveRoute, type: string) => route.status?.conditions?.find((c) => c.type === type);
const flagStatus = (route: LiveRoute) => route.status?.environments?.[0]?.flags?.[0];
const configMapPercent = async (name: RouteName) => {
  const configMap = await admin.get<{ data: Record<string, string> }>(resourcePath(resourceByKind('ConfigMap'), namespace, `${name}-dev`));
  return (JSON.parse(configMap.data['gateway.json']!) as { flags: { name: string; percent: number }[] }).flags.find((f) => f.name === FLAG)!.percent;
};

function routeYaml(name: RouteName, annotations: Record<string, string> = {}): string {
  return stringify({
    apiVersion: 'llmroute.dev/v1alpha1',
    kind: 'LLMRoute',
    metadata: { name, namespace, annotations },
    spec: {
      auth: 'none',
      providers: [{ name: 'mock', type: 'mock' }],
      models: [{ name: 'chat', pin: 'mock-2025-01-01', fallback: [{ provider: 'mock' }] }],
      flags: [
        {
          name: FLAG,
          set: { models: { chat: { maxOutputTokens: 100 } } },
          rollout: { steps: [10, 50, 100], interval: `${INTERVAL_MS / 1000}s`, analysis: { maxErrorRatio: 0.05, maxP99LatencySeconds: 2, minRequests: 5 } },
        },
      ],
      environments: [{ name: 'dev', gateway: { replicas: 1 }, ...(name === 'good' ? { budget: { daily: DAILY_BUDGET, monthly: 300 } } : {}) }],
    },
  });
}
const apply = (yaml: string) => kubectlOk(['apply', '--server-side', '--field-manager=test-user', '-f', '-'], { input: yaml });

/** One tick of every route's traffic; `times` 0 creates the series at zero, as a gateway has them from its start. */
function play(times: 0 | 1): void {
  for (const route of ROUTES) {
    for (const variant of ['canary', 'baseline'] as const) {
      const base = { route, namespace, environment: 'dev', model: 'chat', variant };
      let judged = 0;
      for (const [outcome, count] of Object.entries(TRAFFIC[route][variant])) {
        exporter!.inc(METRIC.requests, { ...base, client: 'anonymous', outcome }, count * times);
        judged += count;
      }
      exporter!.observe(METRIC.requestDuration, base, LATENCY_SECONDS, judged * times);
      if (TRAFFIC[route].costUSD > 0) {
        exporter!.inc(METRIC.cost, { ...base, client: 'anonymous', provider: 'mock' }, TRAFFIC[route].costUSD * times);
        if (route === 'good') spentUSD += TRAFFIC[route].costUSD * times;
      }
    }
  }
}

async function events(name: RouteName): Promise<Record<string, number>> {
  const { items } = await admin.list<{ reason: string; type: string; count?: number; involvedObject: { name: string } }>(resourcePath(resourceByKind('Event'), namespace));
  const counts: Record<string, number> = {};
  for (const event of items.filter((e) => e.involvedObject.name === name)) counts[`${event.type} ${event.reason}`] = (counts[`${event.type} ${event.reason}`] ?? 0) + (event.count ?? 1);
  return counts;
}

/** Waits until the poller has recorded what a wait just saw, so `history` is complete. */
const caughtUp = (name: RouteName, status: string, percent: number) =>
  waitFor(() => history[name].status.at(-1) === status && history[name].configMap.at(-1) === percent, { timeoutMs: 2000, message: `${name}: history at ${status}` });


/** The controller's own llmroute_controller_rollout_percent and _step for a route, from its /metrics. */
async function rolloutMetrics(name: RouteName): Promise<{ percent?: number; step?: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const value = (metric: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${metric}{`) && l.includes(`route="${name}"`) && l.includes(`namespace="${namespace}"`) && l.includes(`flag="${FLAG}"`));
    return line === undefined ? {} : { [metric.slice('llmroute_controller_rollout_'.length)]: Number(line.split(' ').at(-1)) };
  };
  return { ...value('llmroute_controller_rollout_percent'), ...value('llmroute_controller_rollout_step') };
}

beforeAll(async () => {
  admin = await KubeClient.create(kubeConfig());
  namespace = await createNamespace('rollout');
  exporter = await startMetricsExporter();
  prometheus = await startPrometheus([{ address: exporter.address }]);
  play(0);
  // Counters must be seen at zero before they grow, or increase() misses the first growth.
  await waitFor(async () => {
    const body = (await (await fetch(`${prometheus!.url}/api/v1/query?query=${encodeURIComponent(`count(${METRIC.requests}{namespace="${namespace}"})`)}`)).json()) as { data: { result: unknown[] } };
    return body.data.result.length > 0;
  }, { message: 'Prometheus scraped the exporter', timeoutMs: 20_000 });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  feeding = setInterval(() => play(1), TICK_MS);
  await new Promise((resolve) => setTimeout(resolve, 2000));

  metricsPort = await freePort();
  controller = await startController({
    kc: kubeConfig(),
    namespaces: [namespace],
    workers: 2,
    resyncMs: 5000,
    prometheusUrl: prometheus.url,
    metricsPort,
    healthPort: metricsPort,
    log: createLogger({ level: 'info', write: (line) => void logs.push(line) }),
  });
  await apply([routeYaml('good'), routeYaml('bad'), routeYaml('held', { [`rollout.llmroute.dev/${FLAG}`]: 'pause' })].join('---\n'));
  polling = setInterval(() => {
    for (const name of ROUTES) {
      void Promise.all([getRoute(name).then(flagStatus), configMapPercent(name)])
        .then(([flag, percent]) => {
          const seen = history[name];
          const state = flag ? `${flag.percent}% ${flag.state}` : undefined;
          if (state && seen.status.at(-1) !== state) seen.status.push(state);
          if (seen.configMap.at(-1) !== percent) seen.configMap.push(percent);
        })
        .catch(() => undefined);
    }
  }, 100);
}, 60_000);

afterAll(async () => {
  clearInterval(polling);
  clearInterval(feeding);
  await controller?.stop();
  await prometheus?.stop();
  await exporter?.close();
  admin?.close();
});

describe('progressive rollouts with a real Prometheus', () => {
  it('steps a healthy flag 10% → 50% → 100% on its interval, in status, in the compiled config and in Events', async () => {
    const route = await waitFor(async () => {
      const r = await getRoute('good');
      return flagStatus(r)?.state === 'Succeeded' && (await configMapPercent('good')) === 100 ? r : undefined;
    }, { timeoutMs: 20_000, message: 'good: Succeeded at 100%' });
    await caughtUp('good', '100% Succeeded', 100);
    expect(history.good.status).toEqual(['10% Progressing', '50% Progressing', '100% Succeeded']);
    expect(history.good.configMap).toEqual([10, 50, 100]);
    expect(flagStatus(route)).toMatchObject({ name: FLAG, percent: 100, step: 2, state: 'Succeeded' });
    expect(flagStatus(route)!.message).toMatch(/^analysis passed at 50% \(step 2 of 3\): error ratio 0% <= max 5% \(baseline 0%\); p99 latency 0\.398s <= max 2s \(baseline 0\.398s\); \d+ requests over 1m; now at 100%$/);
    expect(condition(route, 'Ready')).toMatchObject({ status: 'True', reason: 'Reconciled' });
    expect(condition(route, 'Degraded')).toMatchObject({ status: 'False' });
    expect(await events('good')).toEqual({ 'Normal RolloutStarted': 1, 'Normal RolloutAdvanced': 1, 'Normal RolloutSucceeded': 1 });
    expect(await rolloutMetrics('good')).toEqual({ percent: 100, step: 2 });
  });

  it('rolls a failing flag back to 0% and reports the measured numbers in Degraded=RolloutAborted', async () => {
    const route = await waitFor(async () => {
      const r = await getRoute('bad');
      return flagStatus(r)?.state === 'RolledBack' && (await configMapPercent('bad')) === 0 && condition(r, 'Degraded')?.status === 'True' ? r : undefined;
    }, { timeoutMs: 20_000, message: 'bad: RolledBack' });
    await caughtUp('bad', '0% RolledBack', 0);
    expect(history.bad.status).toEqual(['10% Progressing', '0% RolledBack']);
    expect(history.bad.configMap).toEqual([10, 0]);
    const degraded = condition(route, 'Degraded')!;
    expect(degraded.reason).toBe('RolloutAborted');
    expect(degraded.message).toMatch(/^flag "canary" in dev: analysis failed at 10% \(step 1 of 3\): error ratio 50% > max 5% \(baseline 0%\); p99 latency 0\.398s <= max 2s \(baseline 0\.398s\); \d+ requests over 1m; rolled back to 0%$/);
    expect(condition(route, 'Ready')).toMatchObject({ status: 'False', reason: 'RolloutAborted' });
    expect(await events('bad')).toEqual({ 'Normal RolloutStarted': 1, 'Warning RolloutAborted': 1 });
    expect(await rolloutMetrics('bad')).toEqual({ percent: 0, step: 0 });
    // Rolled back stays rolled back: the metrics are still bad, but nothing restarts it without an operator.
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 1.5));
    expect(flagStatus(await getRoute('bad'))).toMatchObject({ percent: 0, state: 'RolledBack' });
    expect(await events('bad')).toEqual({ 'Normal RolloutStarted': 1, 'Warning RolloutAborted': 1 });
  });

  it('holds a paused flag at its step although analysis passes, and `promote` sends it to 100%', async () => {
    // By now `good` has gone through both of its steps: `held` had as many intervals and healthy traffic.
    await waitFor(async () => flagStatus(await getRoute('good'))?.state === 'Succeeded', { timeoutMs: 20_000, message: 'good: Succeeded' });
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
    const paused = await getRoute('held');
    expect(flagStatus(paused)).toMatchObject({ percent: 10, step: 0, state: 'Paused', command: 'pause' });
    expect(history.held.status).toEqual(['10% Paused']);
    // As a paused Deployment reports it: not progressing, not complete either.
    expect(condition(paused, 'Progressing')).toMatchObject({ status: 'Unknown', reason: 'RolloutPaused' });
    expect(condition(paused, 'Progressing')!.message).toContain('paused by operator');
    expect(condition(paused, 'Ready')).toMatchObject({ status: 'True' });
    expect(history.held.configMap).toEqual([10]);
    expect(await events('held')).toEqual({ 'Normal RolloutStarted': 1 });

    await kubectlOk(['annotate', '--overwrite', 'llmroute', 'held', '-n', namespace, `rollout.llmroute.dev/${FLAG}=promote`]);
    const promoted = await waitFor(async () => {
      const r = await getRoute('held');
      return flagStatus(r)?.state === 'Succeeded' && (await configMapPercent('held')) === 100 ? r : undefined;
    }, { timeoutMs: 15_000, message: 'held: promoted to 100%' });
    await caughtUp('held', '100% Succeeded', 100);
    expect(flagStatus(promoted)).toMatchObject({ percent: 100, state: 'Succeeded', command: 'promote', message: 'promoted to 100% by operator' });
    expect(history.held.configMap).toEqual([10, 100]);
    expect(await events('held')).toEqual({ 'Normal RolloutStarted': 1, 'Normal RolloutPromoted': 1 });
    expect(await rolloutMetrics('held')).toEqual({ percent: 100, step: 2 });
  });

  it('reports spend in status and BudgetExceeded=True once the cost counter passes a reject budget', async () => {
    const route = await waitFor(async () => {
      const r = await getRoute('good');
      return condition(r, 'BudgetExceeded')?.status === 'True' ? r : undefined;
    }, { timeoutMs: 20_000, message: `good: BudgetExceeded=True (spent $${spentUSD.toFixed(2)} so far)` });
    const spend = route.status!.environments![0]!.spend!;
    expect(spend.dailyUSD).toBeGreaterThanOrEqual(DAILY_BUDGET);
    // increase() extrapolates by up to half a scrape interval at each end; never more than what was spent by then.
    expect(spend.dailyUSD).toBeLessThanOrEqual(spentUSD * 1.25);
    expect(spend.monthlyUSD).toBeCloseTo(spend.dailyUSD!, 6);
    expect(condition(route, 'BudgetExceeded')).toMatchObject({ reason: 'BudgetExhausted' });
    // Only the exhausted budget is named (the monthly one is not spent), with the moment requests resume.
    expect(condition(route, 'BudgetExceeded')!.message).toMatch(/^daily budget: \$\d+\.\d\d of \$20\.00 spent, resets at (\d{4}-\d\d-\d\dT00:00:00Z); requests are rejected until \1$/);
    expect(condition(route, 'BudgetExceeded')!.message).toContain(`$${spend.dailyUSD!.toFixed(2)} of $20.00`);
    // A budget is not a rollout: the route is still Ready.
    expect(condition(route, 'Ready')).toMatchObject({ status: 'True' });
    // Routes without a budget say so.
    expect(condition(await getRoute('bad'), 'BudgetExceeded')).toMatchObject({ status: 'False', reason: 'NoBudget' });
    expect(logs.filter((line) => line.includes('could not measure spend'))).toEqual([]);
  });

  it('drops the step series when a flag loses its rollout, and every series when the route goes', async () => {
    const fixed = parse(routeYaml('bad')) as { spec: { flags: { rollout?: unknown; percent?: number }[] } };
    delete fixed.spec.flags[0]!.rollout;
    fixed.spec.flags[0]!.percent = 20;
    await apply(stringify(fixed));
    await waitFor(async () => JSON.stringify(await rolloutMetrics('bad')) === JSON.stringify({ percent: 20 }), { message: 'bad: a fixed 20% and no step' });
    await kubectlOk(['delete', 'llmroute', 'bad', '-n', namespace]);
    await waitFor(async () => Object.keys(await rolloutMetrics('bad')).length === 0, { message: 'bad: no series once deleted' });
    expect(await rolloutMetrics('good')).toEqual({ percent: 100, step: 2 });
  });
});
