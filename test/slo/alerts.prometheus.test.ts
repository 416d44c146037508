/**
 * The alert rules in a real Prometheus (issue 7, item 4): Debian's Prometheus scrapes three in-process gateways every
 * second and evaluates the rules every second, while fake providers inject three faults, one per gateway:
 *
 * - quota: the primary provider answers 429 insufficient_quota (fallbacks answer) → LLMRouteProviderQuotaExhausted;
 * - outage: every provider answers 500 → LLMRouteErrorBudgetBurn;
 * - budget: a tiny daily budget with onExhausted: reject, so requests are refused 429 budget_exceeded →
 *   LLMRouteBudgetExhausted{signal="rejected"}.
 *
 * The gateways are told apart the way a cluster tells environments apart: each target gets `job="e2e-test"` (what the
 * ServiceMonitor's jobLabel gives route e2e, environment test) and its own `namespace`, and each gets the rule group
 * `alertRuleGroups(route, 'test', namespace)` renders for it. The assertions read Prometheus' `/api/v1/alerts`: the
 * fault's alert fires in its namespace, and nothing else fires there except alerts the same fault legitimately
 * causes (listed per scenario, with the reason).
 *
 * THE TEST COPY OF THE RULES IS TIME-SCALED: every `for:` is divided by 60 (2m → 2s, 5m → 5s, 15m → 15s) so that
 * alerts fire within seconds. Expressions, labels and annotations are exactly what the PrometheusRule carries.
 * Finally every query of the rendered dashboard ConfigMap is run against this Prometheus, so the real PromQL parser
 * accepts each one.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { alertRuleGroups, type RuleGroup } from '../../src/render/alerts.js';
import { renderEnvironment } from '../../src/render/render.js';
import { buildRoute, startTestGateway, type TestGateway, type TestGatewayOptions } from '../support/gateway.js';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.js';
import { GPT, TIGHT, TIMEOUTS, USER, gatewayOptions, startFakes, stopFakes, type Fakes } from '../gateway/e2e/fixtures.js';

const JOB = 'e2e-test';
const DEADLINE_MS = 45_000;

interface Scenario {
  namespace: 'quota' | 'outage' | 'budget';
  /** The alert the fault must fire, with labels it must carry. */
  expected: { alert: string; labels: Record<string, string> };
  /** Alerts the same fault may also fire, correctly; every other alert must stay silent. */
  related: Record<string, string>;
  options(fakes: Fakes): TestGatewayOptions;
  inject(fakes: Fakes): void;
}

const SCENARIOS: Scenario[] = [
  {
    namespace: 'quota',
    expected: { alert: 'LLMRouteProviderQuotaExhausted', labels: { provider: 'openai', severity: 'critical' } },
    related: { LLMRouteFallbackRateHigh: 'every answer comes from the fallback while the primary has no quota (for: 15s in the scaled copy)' },
    options: (fakes) => gatewayOptions(fakes, { timeouts: TIGHT }),
    inject: (fakes) => fakes.openai.script({ kind: 'quota_exhausted' }),
  },
  {
    namespace: 'outage',
    expected: { alert: 'LLMRouteErrorBudgetBurn', labels: { severity: 'critical' } },
    related: { LLMRouteCircuitOpen: 'every provider fails, so a breaker may open' },
    options: (fakes) => gatewayOptions(fakes, { timeouts: TIGHT, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50, budgetPercent: 100 } }),
    inject: (fakes) => {
      for (const fake of [fakes.openai, fakes.anthropic, fakes.azure]) fake.script({ kind: 'server_error' });
    },
  },
  {
    namespace: 'budget',
    expected: { alert: 'LLMRouteBudgetExhausted', labels: { signal: 'rejected', scope: 'environment', window: 'daily', severity: 'critical' } },
    related: {
      LLMRouteBudgetThresholdReached: 'spend crossed alertAt 0.5 on the way to the limit',
      LLMRouteBudgetBurnRateHigh: 'at the spend rate of the first seconds the day would cost far more than $0.003 (for: 15s in the scaled copy)',
    },
    options: (fakes) =>
      gatewayOptions(fakes, {
        models: [{ name: 'chat', pin: GPT, maxOutputTokens: 50, timeouts: { ...TIMEOUTS, ...TIGHT }, fallback: [{ provider: 'openai' }] }],
        prices: { [GPT]: { input: 1, output: 20 } },
        // About $0.001 reserved per request: two or three answers, then 429 budget_exceeded.
        budget: { daily: 0.003, alertAt: [0.5], onExhausted: 'reject' },
      }),
    inject: () => undefined,
  },
];

/** `for:` divided by 60, at least 1s: the only change the test copy makes to the rendered rules. */
function scaleFor(duration: string): string {
  const match = /^(\d+)([smh])$/.exec(duration);
  if (!match) throw new Error(`unexpected duration ${duration}`);
  const seconds = Number(match[1]) * { s: 1, m: 60, h: 3600 }[match[2] as 's' | 'm' | 'h'];
  return `${Math.max(1, Math.round(seconds / 60))}s`;
}

function testCopy(groups: RuleGroup[], namespace: string): RuleGroup[] {
  // Group names must be unique within the rule file; the rules are untouched but for `for`.
  return groups.map((g) => ({ name: `${g.name}.${namespace}`, rules: g.rules.map((r) => (r.for ? { ...r, for: scaleFor(r.for) } : r)) }));
}

interface Alert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
  value: string;
}

async function alerts(prometheus: PrometheusServer): Promise<Alert[]> {
  const body = (await (await fetch(`${prometheus.url}/api/v1/alerts`)).json()) as { status: string; data: { alerts: Alert[] } };
  expect(body.status).toBe('success');
  return body.data.alerts;
}

const firingIn = (all: Alert[], namespace: string) => all.filter((a) => a.state === 'firing' && a.labels.namespace === namespace);
const matches = (alert: Alert, expected: Scenario['expected']) => alert.labels.alertname === expected.alert && Object.entries(expected.labels).every(([k, v]) => alert.labels[k] === v);

let prometheus: PrometheusServer | undefined;
const fakes: Fakes[] = [];
const gateways: TestGateway[] = [];
const requests = { sent: 0, failed: 0 };
let driving = true;
let traffic: Promise<unknown> | undefined;

beforeAll(async () => {
  for (const scenario of SCENARIOS) {
    const set = await startFakes();
    fakes.push(set);
    scenario.inject(set);
    gateways.push(await startTestGateway(scenario.options(set)));
  }
  const groups = SCENARIOS.flatMap((s, i) => testCopy(alertRuleGroups(buildRoute(s.options(fakes[i]!)), 'test', s.namespace), s.namespace));
  prometheus = await startPrometheus(
    gateways.map((g, i) => ({ address: new URL(g.metricsUrl).host, labels: { job: JOB, namespace: SCENARIOS[i]!.namespace } })),
    { rules: { groups } },
  );
  // Steady traffic on every gateway, about 20 requests a second each, until the tests end.
  traffic = Promise.all(
    gateways.map(async (g) => {
      const client = g.client();
      while (driving) {
        requests.sent++;
        await client.chat.completions.create({ model: 'chat', messages: USER }).catch(() => void requests.failed++);
        await sleep(50);
      }
    }),
  );
}, 60_000);

afterAll(async () => {
  driving = false;
  await traffic;
  await prometheus?.stop();
  await Promise.all(gateways.map((g) => g.stop()));
  await Promise.all(fakes.map((f) => stopFakes(f)));
});

describe('the alert rules in a real Prometheus, against a gateway with injected faults', () => {
  it('fires the matching alert for each fault, and no unrelated alert', async () => {
    const started = Date.now();
    let all: Alert[] = [];
    const done = () => SCENARIOS.every((s) => firingIn(all, s.namespace).some((a) => matches(a, s.expected)));
    while (Date.now() - started < DEADLINE_MS) {
      all = await alerts(prometheus!);
      if (done()) break;
      await sleep(500);
    }
    const summary = all.map((a) => `${a.labels.namespace}/${a.labels.alertname} ${a.state}`).sort();
    expect({ done: done(), alerts: summary }).toEqual({ done: true, alerts: summary });
    for (const scenario of SCENARIOS) {
      const firing = firingIn(all, scenario.namespace);
      expect(firing.filter((a) => matches(a, scenario.expected)).length).toBeGreaterThan(0);
      // Everything else firing in this environment is an alert the same fault explains.
      const unrelated = firing.filter((a) => a.labels.alertname !== scenario.expected.alert && !(a.labels.alertname! in scenario.related));
      expect({ namespace: scenario.namespace, unrelated: unrelated.map((a) => a.labels) }).toEqual({ namespace: scenario.namespace, unrelated: [] });
      // And the other faults' alerts stay silent here: no cross-talk between environments.
      for (const other of SCENARIOS.filter((s) => s !== scenario)) {
        expect({ namespace: scenario.namespace, [other.expected.alert]: firing.some((a) => matches(a, other.expected)) }).toEqual({ namespace: scenario.namespace, [other.expected.alert]: false });
      }
    }
    // Nothing fires for a gateway that does not exist in this Prometheus (every alert is one of the three).
    expect(all.filter((a) => !SCENARIOS.some((s) => s.namespace === a.labels.namespace)).map((a) => a.labels)).toEqual([]);
    // The faults are what the gateways saw: the primary refused (quota), everything failed (outage), budgets refused.
    expect(fakes[0]!.openai.attempts.some((a) => a.outcome === 'quota_exhausted')).toBe(true);
    expect(requests.failed).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(DEADLINE_MS);
  }, 60_000);

  it('evaluates every query of the rendered dashboard ConfigMap without error (the real PromQL parser)', async () => {
    const scenario = SCENARIOS[0]!;
    const route = buildRoute(scenario.options(fakes[0]!));
    const configMap = renderEnvironment({ route, environment: 'test', namespace: scenario.namespace }).objects.find((o) => o.metadata.name === `${JOB}-dashboard`) as unknown as { data: Record<string, string> };
    const dashboard = JSON.parse(Object.values(configMap.data)[0]!) as { templating: { list: { name: string; query: unknown; current: { value?: string } }[] }; panels: { title: string; targets?: { expr: string }[] }[] };
    const value = (name: string) => dashboard.templating.list.find((v) => v.name === name)?.current.value;
    const substitute = (expr: string) =>
      expr
        .replaceAll('$namespace', value('namespace')!)
        .replaceAll('$route', value('route')!)
        .replaceAll('$environment', value('environment')!)
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$__range', '1h');
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: substitute(t.expr) })));
    expect(queries.length).toBeGreaterThan(20);
    const results = await Promise.all(
      queries.map(async ({ panel, expr }) => {
        const response = await fetch(`${prometheus!.url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
        const body = (await response.json()) as { status: string; error?: string; data?: { result: unknown[] } };
        return { panel, expr, status: body.status, error: body.error, series: body.data?.result.length ?? 0 };
      }),
    );
    for (const r of results) expect({ panel: r.panel, expr: r.expr, status: r.status, error: r.error }).toEqual({ panel: r.panel, expr: r.expr, status: 'success', error: undefined });
    // The defaults select the scraped environment: its traffic is on the dashboard.
    expect(results.find((r) => r.panel === 'Requests by outcome')!.series).toBeGreaterThan(0);
    expect(results.find((r) => r.panel === 'Upstream attempts by result')!.series).toBeGreaterThan(0);
  }, 30_000);
});
