/**
 * The alert rules and the dashboard against the metrics contract: every alert has its annotations and a runbook
 * section, thresholds follow spec.alerts, selectors are the environment's, and every metric and label that a rule or
 * a panel uses is one the code registers and docs/metrics.md documents. (promtool proves the rules fire:
 * alerts.promtool.test.ts.)
 */
import { describe, expect, it } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { loadRoutes } from '../../src/api/files.js';
import { ERROR_OUTCOMES } from '../../src/api/metric-names.js';
import type { LLMRoute } from '../../src/api/schema.js';
import { ALERT_NAMES, BURN_RATE_WINDOWS, alertAtFractions, alertRuleGroups, promNumber, type AlertRule } from '../../src/render/alerts.js';
import { DASHBOARD_FILE, gatewayDashboard, gatewayDashboardJson } from '../../src/render/dashboards.js';
import { renderEnvironment } from '../../src/render/render.js';
import { DEFAULT_METRIC, HISTOGRAM_SUFFIX, contractProblems, documentedMetrics, documents, metricNames, registeredMetrics, selectors } from '../support/promql.js';

const UPDATE = process.env.UPDATE_GOLDEN === '1';

async function example(file: string): Promise<LLMRoute> {
  const { routes, findings } = await loadRoutes([file]);
  expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
  return routes[0]!.route;
}

/** support-bot with extra fields merged into its spec (YAML text appended to the example is awkward; edit the object). */
async function supportBot(edit: (route: LLMRoute) => void = () => undefined): Promise<LLMRoute> {
  const route = structuredClone(await example('examples/support-bot.yaml'));
  edit(route);
  return route;
}

/** The rules of an environment, in the route's namespace or, given, another (undefined: rendered without one). */
const rulesIn = (route: LLMRoute, environment: string, namespace: string | undefined) => alertRuleGroups(route, environment, namespace).flatMap((g) => g.rules);
const rulesOf = (route: LLMRoute, environment: string) => rulesIn(route, environment, route.metadata.namespace);
const byName = (rules: AlertRule[], name: string) => rules.filter((r) => r.alert === name);

// ---------------------------------------------------------------------------------------------------------------

describe('alert rules', () => {
  it('every alert has a summary, a description and a runbook_url whose anchor is a section of docs/runbooks.md', async () => {
    const runbooks = await readFile('docs/runbooks.md', 'utf8');
    const anchors = new Set([...runbooks.matchAll(/^## (.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-')));
    const route = await supportBot();
    for (const rule of rulesOf(route, 'production')) {
      expect(rule.annotations.summary?.length).toBeGreaterThan(10);
      expect(rule.annotations.description?.length).toBeGreaterThan(40);
      expect(rule.annotations.runbook_url).toBe(`${route.spec.alerts.runbookURL}#${rule.alert.toLowerCase()}`);
      expect(anchors.has(rule.alert.toLowerCase())).toBe(true);
    }
    // And no runbook section without an alert.
    expect([...anchors].filter((a) => a.startsWith('llmroute')).sort()).toEqual(ALERT_NAMES.map((n) => n.toLowerCase()).sort());
  });

  it('links the runbook URL the route names', async () => {
    const route = await supportBot((r) => (r.spec.alerts.runbookURL = 'https://wiki.example.com/llm/runbooks'));
    for (const rule of rulesOf(route, 'production')) expect(rule.annotations.runbook_url).toBe(`https://wiki.example.com/llm/runbooks#${rule.alert.toLowerCase()}`);
  });

  it('labels every alert with its severity and the route environment', async () => {
    for (const rule of rulesOf(await supportBot(), 'staging')) {
      expect(['critical', 'warning']).toContain(rule.labels.severity);
      expect(rule.labels).toMatchObject({ llmroute_route: 'support-bot', llmroute_environment: 'staging' });
    }
  });

  it('selects the environment: every gateway selector has its job and namespace', async () => {
    for (const [namespace, expected] of [['ai', ['job="support-bot-production"', 'namespace="ai"']], [undefined, ['job="support-bot-production"']]] as const) {
      for (const rule of rulesIn(await supportBot(), 'production', namespace)) {
        for (const { metric, matchers } of selectors(rule.expr)) {
          const text = matchers.map((m) => `${m.label}${m.op}"${m.value}"`);
          if (metric === 'llmroute_controller_rollout_percent') {
            expect(text).toEqual(expect.arrayContaining(['route="support-bot"', 'environment="production"']));
            if (namespace) expect(text.some((t) => t === `exported_namespace="${namespace}"` || t === `namespace="${namespace}"`)).toBe(true);
          } else {
            expect(text).toEqual(expect.arrayContaining([...expected]));
            if (!namespace) expect(text.some((t) => t.startsWith('namespace='))).toBe(false);
          }
        }
      }
    }
  });

  it('takes its thresholds from spec.alerts', async () => {
    const route = await supportBot((r) => {
      Object.assign(r.spec.alerts, { errorRatio: 0.02, p99LatencySeconds: 12.5, p99TimeToFirstTokenSeconds: 3, fallbackRatio: 0.15, rateLimitedRatio: 0.3, streamStallRatio: 0.07, streamTruncatedRatio: 0.005 });
    });
    const rules = rulesOf(route, 'production');
    const expr = (name: string) => byName(rules, name).map((r) => r.expr);
    // The burn-rate thresholds: factor × errorRatio, in both windows of each rule.
    expect(expr('LLMRouteErrorBudgetBurn')).toHaveLength(BURN_RATE_WINDOWS.length);
    for (const [i, window] of BURN_RATE_WINDOWS.entries()) {
      const e = expr('LLMRouteErrorBudgetBurn')[i]!;
      expect(e.match(new RegExp(`> ${promNumber(window.factor * 0.02).replace('.', '\\.')}\\b`, 'g'))).toHaveLength(2);
      expect(e).toContain(`[${window.long}]`);
      expect(e).toContain(`[${window.short}]`);
    }
    expect(expr('LLMRouteErrorBudgetBurn')[0]).toContain('> 0.288');
    expect(expr('LLMRouteErrorBudgetBurn')[1]).toContain('> 0.12');
    expect(expr('LLMRouteLatencyHigh')[0]).toMatch(/> 12\.5$/);
    expect(expr('LLMRouteTimeToFirstTokenHigh')[0]).toMatch(/> 3$/);
    expect(expr('LLMRouteFallbackRateHigh')[0]).toMatch(/> 0\.15$/);
    expect(expr('LLMRouteProviderRateLimited')[0]).toMatch(/> 0\.3$/);
    expect(expr('LLMRouteStreamStalls')[0]).toMatch(/> 0\.07$/);
    expect(expr('LLMRouteStreamsTruncated')[0]).toMatch(/> 0\.005$/);
    // Budgets: each limit of each scope and window, against what its gauge says is left.
    expect(byName(rules, 'LLMRouteBudgetBurnRateHigh').map((r) => [r.labels.scope, r.labels.window, /\(\$(\d+)\) has left/.exec(r.annotations.description!)?.[1], r.expr.split(' > ')[1]])).toEqual([
      ['environment', 'daily', '100', 'min by (namespace, job) (llmroute_budget_remaining_usd{job="support-bot-production", namespace="ai", scope="environment", window="daily"})'],
      ['environment', 'monthly', '1500', 'min by (namespace, job) (llmroute_budget_remaining_usd{job="support-bot-production", namespace="ai", scope="environment", window="monthly"})'],
      ['client:web', 'daily', '20', 'min by (namespace, job) (llmroute_budget_remaining_usd{job="support-bot-production", namespace="ai", scope="client:web", window="daily"})'],
    ]);
  });

  it('uses the defaults when spec.alerts sets nothing', async () => {
    const rules = rulesOf(await example('examples/quickstart.yaml'), 'dev');
    const expr = (name: string) => byName(rules, name).map((r) => r.expr);
    expect(expr('LLMRouteErrorBudgetBurn')[0]).toContain('> 0.72 and');
    expect(expr('LLMRouteErrorBudgetBurn')[1]).toContain('> 0.3 and');
    expect(expr('LLMRouteLatencyHigh')[0]).toMatch(/> 30$/);
    expect(expr('LLMRouteTimeToFirstTokenHigh')[0]).toMatch(/> 10$/);
    expect(expr('LLMRouteFallbackRateHigh')[0]).toMatch(/> 0\.1$/);
    expect(expr('LLMRouteProviderRateLimited')[0]).toMatch(/> 0\.1$/);
    expect(expr('LLMRouteStreamStalls')[0]).toMatch(/> 0\.05$/);
    expect(expr('LLMRouteStreamsTruncated')[0]).toMatch(/> 0\.01$/);
  });

  it('clamps a burn-rate threshold over 100% to "every request fails"', async () => {
    const route = await supportBot((r) => (r.spec.alerts.errorRatio = 0.5));
    const [fast, slow] = byName(rulesOf(route, 'production'), 'LLMRouteErrorBudgetBurn');
    expect(fast!.expr).toContain('>= 1 and');
    expect(slow!.expr).toContain('>= 1 and');
  });

  it('renders one threshold alert per alertAt fraction of the environment and client budgets', async () => {
    const route = await supportBot((r) => (r.spec.clients![0]!.budget!.alertAt = [0.8, 0.9]));
    const thresholds = byName(rulesOf(route, 'production'), 'LLMRouteBudgetThresholdReached');
    // production: [0.5, 0.8, 1]; client web: [0.8, 0.9].
    expect(alertAtFractions(route, 'production')).toEqual([0.5, 0.8, 0.9, 1]);
    expect(thresholds.map((r) => r.labels.fraction)).toEqual(['0.5', '0.8', '0.9', '1']);
    for (const rule of thresholds) expect(rule.expr).toContain(`fraction="${rule.labels.fraction}"`);
    // staging: [0.5, 0.8] and the client's default [0.8].
    expect(byName(rulesOf(await supportBot(), 'staging'), 'LLMRouteBudgetThresholdReached').map((r) => r.labels.fraction)).toEqual(['0.5', '0.8']);
  });

  it('renders budget, Redis and rollout alerts only where they apply', async () => {
    const names = (rules: AlertRule[]) => [...new Set(rules.map((r) => r.alert))];
    const quickstart = names(rulesOf(await example('examples/quickstart.yaml'), 'dev'));
    for (const absent of ['LLMRouteBudgetStoreDegraded', 'LLMRouteRateLimitStoreDegraded', 'LLMRouteBudgetThresholdReached', 'LLMRouteBudgetBurnRateHigh', 'LLMRouteBudgetExhausted', 'LLMRouteRolloutAborted']) expect(quickstart).not.toContain(absent);
    expect(quickstart).toHaveLength(ALERT_NAMES.length - 6);

    const production = rulesOf(await supportBot(), 'production');
    expect(names(production)).toEqual(expect.arrayContaining(['LLMRouteBudgetStoreDegraded', 'LLMRouteRateLimitStoreDegraded', 'LLMRouteBudgetThresholdReached', 'LLMRouteBudgetBurnRateHigh', 'LLMRouteRolloutAborted']));
    // production's budgets reject (the default) and its alertAt has 1; no budget degrades: no degraded-requests rule.
    expect(byName(production, 'LLMRouteBudgetExhausted').map((r) => r.labels.signal)).toEqual(['rejected', 'limit_reached']);
    const staging = rulesOf(await supportBot(), 'staging');
    expect(names(staging)).not.toContain('LLMRouteBudgetStoreDegraded');
    expect(names(staging)).not.toContain('LLMRouteRateLimitStoreDegraded');
    // With Redis but no limits, no limiter asks Redis anything: nothing would ever report it gone.
    const unlimited = await supportBot((r) => delete r.spec.providers[0]!.limits);
    expect(names(rulesOf(unlimited, 'production'))).toContain('LLMRouteBudgetStoreDegraded');
    expect(names(rulesOf(unlimited, 'production'))).not.toContain('LLMRouteRateLimitStoreDegraded');
    const clientLimited = await supportBot((r) => {
      delete r.spec.providers[0]!.limits;
      r.spec.clients![0]!.limits = { requestsPerMinute: 60 };
    });
    expect(names(rulesOf(clientLimited, 'production'))).toContain('LLMRouteRateLimitStoreDegraded');
    expect(byName(staging, 'LLMRouteBudgetExhausted').map((r) => r.labels.signal)).toEqual(['rejected']);
    const degrading = await supportBot((r) => Object.assign(r.spec.clients![0]!.budget!, { onExhausted: 'degrade', degradeTo: 'chat' }));
    expect(byName(rulesOf(degrading, 'staging'), 'LLMRouteBudgetExhausted').map((r) => r.labels.signal)).toEqual(['degraded_requests', 'rejected']);
    // A flag limited to other environments has no rollout here.
    const elsewhere = await supportBot((r) => (r.spec.flags![0]!.environments = ['staging']));
    expect(names(rulesOf(elsewhere, 'production'))).not.toContain('LLMRouteRolloutAborted');
    expect(names(rulesOf(elsewhere, 'staging'))).toContain('LLMRouteRolloutAborted');
  });

  it('rule names and static labels are unique, so promtool finds no duplicate rules', async () => {
    const keys = rulesOf(await supportBot(), 'production').map((r) => `${r.alert} ${JSON.stringify(r.labels)}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('counts the error outcomes the rollout analysis counts', async () => {
    const [fast] = byName(rulesOf(await supportBot(), 'production'), 'LLMRouteErrorBudgetBurn');
    expect(fast!.expr).toContain(`outcome=~"${ERROR_OUTCOMES.join('|')}"`);
    expect(fast!.expr).toContain(`outcome=~"${['success', ...ERROR_OUTCOMES].join('|')}"`);
  });

  it('is what the PrometheusRule of each environment carries', async () => {
    const route = await supportBot();
    const { objects } = renderEnvironment({ route, environment: 'production' });
    const rule = objects.find((o) => o.kind === 'PrometheusRule') as unknown as { spec: { groups: unknown } };
    expect(rule.spec.groups).toEqual(alertRuleGroups(route, 'production', 'ai'));
  });
});

describe('the metrics contract (docs/metrics.md)', () => {
  it('documents every metric the gateway and the controller register, with its type and labels', async () => {
    const documented = await documentedMetrics();
    for (const metric of await registeredMetrics()) {
      const doc = documented.find((d) => documents(d, metric.name));
      expect({ metric: metric.name, documented: Boolean(doc) }).toEqual({ metric: metric.name, documented: true });
      if (DEFAULT_METRIC.test(metric.name)) continue;
      expect({ metric: metric.name, type: doc!.type, labels: [...doc!.labels].sort() }).toEqual({ metric: metric.name, type: metric.type, labels: [...metric.labels].sort() });
    }
  });

  it('documents no produced metric that the code does not register', async () => {
    const registered = await registeredMetrics();
    const missing = (await documentedMetrics()).filter((d) => !d.planned && !d.name.endsWith('*') && d.name !== 'up' && !registered.some((r) => r.name === d.name));
    expect(missing.map((d) => d.name)).toEqual([]);
  });

  it('every alert reads only registered, documented metrics, with labels and label values they have', async () => {
    const [registered, documented] = await Promise.all([registeredMetrics(), documentedMetrics()]);
    const route = await supportBot((r) => Object.assign(r.spec.clients![0]!.budget!, { onExhausted: 'degrade', degradeTo: 'chat' }));
    const rules = [...rulesOf(route, 'production'), ...rulesIn(route, 'production', undefined)];
    expect(new Set(rules.map((r) => r.alert)).size).toBe(ALERT_NAMES.length);
    for (const rule of rules) expect({ alert: rule.alert, problems: contractProblems(rule.expr, registered, documented) }).toEqual({ alert: rule.alert, problems: [] });
  });

  it('names in the alerts column are alerts that use the metric', async () => {
    const text = await readFile('docs/metrics.md', 'utf8');
    const route = await supportBot((r) => Object.assign(r.spec.clients![0]!.budget!, { onExhausted: 'degrade', degradeTo: 'chat' }));
    const rules = rulesOf(route, 'production');
    for (const line of text.split('\n').filter((l) => l.startsWith('| `'))) {
      const cells = line.split('|').slice(1, -1).map((c) => c.trim());
      if (cells.length !== 6) continue;
      const metric = cells[0]!.match(/`([^`]+)`/)![1]!;
      for (const alert of cells[5]!.split(',').map((a) => a.trim()).filter((a) => a.startsWith('LLMRoute'))) {
        expect({ alert, metric, uses: byName(rules, alert).some((r) => metricNames(r.expr).some((n) => n.replace(HISTOGRAM_SUFFIX, '') === metric || n === metric)) }).toEqual({ alert, metric, uses: true });
      }
    }
  });
});

describe('the Grafana dashboard', () => {
  const dashboard = gatewayDashboard() as { schemaVersion: number; uid: string; templating: { list: { name: string; type: string; query: unknown }[] }; panels: Panel[] };
  interface Panel {
    id: number;
    type: string;
    title: string;
    gridPos: { x: number; y: number; w: number; h: number };
    datasource?: { uid: string };
    targets?: { expr: string; refId: string; datasource: { uid: string } }[];
  }
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

  it(`is ${DASHBOARD_FILE}, valid JSON (UPDATE_GOLDEN=1 rewrites it)`, async () => {
    if (UPDATE) await writeFile(DASHBOARD_FILE, gatewayDashboardJson());
    const text = await readFile(DASHBOARD_FILE, 'utf8');
    expect(text).toBe(gatewayDashboardJson());
    expect(JSON.parse(text)).toEqual(dashboard);
  });

  it('has a datasource variable and route, environment and namespace variables that every query uses', () => {
    expect(dashboard.schemaVersion).toBe(39);
    const variables = dashboard.templating.list;
    expect(variables.map((v) => [v.name, v.type])).toEqual([
      ['datasource', 'datasource'],
      ['namespace', 'query'],
      ['route', 'query'],
      ['environment', 'query'],
    ]);
    expect(queries.length).toBeGreaterThan(20);
    for (const { panel, expr } of queries) {
      for (const { metric, matchers } of selectors(expr)) {
        expect({ panel, metric, matchers: matchers.map((m) => `${m.label}${m.op}"${m.value}"`) }).toEqual({ panel, metric, matchers: expect.arrayContaining(['namespace=~"$namespace"', 'route="$route"', 'environment="$environment"']) });
      }
    }
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
      expect(panel.datasource?.uid).toBe('${datasource}');
      for (const target of panel.targets ?? []) expect(target.datasource.uid).toBe('${datasource}');
    }
  });

  it('lays panels out on the 24-column grid with unique ids', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    const titles = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(titles).toEqual(['Traffic and errors', 'Latency', 'Providers', 'Tokens and cost', 'Budget', 'Streams and health']);
  });

  it('every query reads only registered, documented metrics, with labels and label values they have', async () => {
    const [registered, documented] = await Promise.all([registeredMetrics(), documentedMetrics()]);
    for (const { panel, expr } of queries) expect({ panel, expr, problems: contractProblems(expr, registered, documented) }).toEqual({ panel, expr, problems: [] });
    // The variables' queries too.
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const query = (variable.query as { query: string }).query.match(/label_values\((.*), \w+\)$/)![1]!;
      expect(contractProblems(query, registered, documented)).toEqual([]);
    }
  });

  it('covers the panels the SLO pack asks for', () => {
    const all = queries.map((q) => q.expr).join('\n');
    for (const metric of ['llmroute_requests_total', 'llmroute_upstream_attempts_total', 'llmroute_request_duration_seconds_bucket', 'llmroute_time_to_first_token_seconds_bucket', 'llmroute_tokens_total', 'llmroute_cost_usd_total', 'llmroute_wasted_cost_usd_total', 'llmroute_fallbacks_total', 'llmroute_circuit_breaker_state', 'llmroute_budget_threshold_crossed_total', 'llmroute_streams_total']) expect(all).toContain(metric);
    expect(all).toContain('sum by (variant)');
  });
});

describe('the PromQL helpers of these tests', () => {
  it('find metric names, not functions, keywords, labels or durations', () => {
    expect(metricNames('sum by (namespace, job) (rate(a_total{x="y"}[5m])) / on (job) group_left () sum(b_total offset 1h) > 1e-7 and absent(up{job="j"})')).toEqual(['a_total', 'b_total', 'up']);
    expect(metricNames('rate({__name__=~"c_total|d_total", job="j"}[1h]) * (86400 - time() % 86400)')).toEqual(['c_total', 'd_total']);
  });

  it('report unknown metrics, labels and label values', async () => {
    const [registered, documented] = await Promise.all([registeredMetrics(), documentedMetrics()]);
    expect(contractProblems('rate(llmroute_requests_total{outcome="budget"}[5m])', registered, documented)).toEqual(['outcome="budget" is not a value the code gives outcome']);
    expect(contractProblems('sum by (fingerprint) (llmroute_nope_total{provider="x"})', registered, documented)).toEqual([
      'llmroute_nope_total is not registered by the gateway or the controller',
      'llmroute_nope_total is not in docs/metrics.md',
      'llmroute_nope_total has no label provider',
      'grouping by fingerprint, which none of llmroute_nope_total has',
    ]);
    // A planned row of its own: the real Planned table empties as metrics land.
    const planned = [...documented, { name: 'llmroute_future_usd', type: 'gauge', labels: [], planned: true, section: 'Planned' }];
    expect(contractProblems('llmroute_future_usd', registered, planned)).toEqual(['llmroute_future_usd is not registered by the gateway or the controller', 'llmroute_future_usd is only planned in docs/metrics.md']);
  });
});
