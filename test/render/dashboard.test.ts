/**
 * The Grafana dashboard ConfigMap of each route environment (issue 7, item 5): one per environment, labelled for the
 * Grafana sidecar, holding valid dashboard JSON whose variables default to that environment and whose every query
 * reads only metrics of docs/metrics.md (the checks test/render/alerts.test.ts applies to the generic dashboard).
 */
import { describe, expect, it } from '@jest/globals';
import { loadRoutes } from '../../src/api/files.js';
import type { LLMRoute } from '../../src/api/schema.js';
import { environmentDashboardUid, gatewayDashboard } from '../../src/render/dashboards.js';
import { renderEnvironment, type KubernetesObject } from '../../src/render/render.js';
import { contractProblems, documentedMetrics, registeredMetrics, selectors } from '../support/promql.js';

const CASES: [file: string, environment: string][] = [
  ['examples/quickstart.yaml', 'dev'],
  ['examples/support-bot.yaml', 'staging'],
  ['examples/support-bot.yaml', 'production'],
  ['test/render/routes/variants.yaml', 'single'],
];

async function route(file: string): Promise<LLMRoute> {
  const { routes, findings } = await loadRoutes([file]);
  expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
  return routes[0]!.route;
}

interface Variable {
  name: string;
  type: string;
  current: { text?: string; value?: string };
}
interface Dashboard {
  uid: string;
  title: string;
  templating: { list: Variable[] };
  panels: { title: string; type: string; targets?: { expr: string }[] }[];
}

const configMaps = (objects: KubernetesObject[]) => objects.filter((o) => o.kind === 'ConfigMap') as (KubernetesObject & { data: Record<string, string> })[];

describe('the dashboard ConfigMap of each environment', () => {
  it.each(CASES)('%s/%s: one ConfigMap <route>-<env>-dashboard, labelled grafana_dashboard: "1", with valid JSON defaulted to the environment', async (file, environment) => {
    const r = await route(file);
    const { objects } = renderEnvironment({ route: r, environment });
    const name = `${r.metadata.name}-${environment}`;
    const dashboards = configMaps(objects).filter((c) => c.metadata.labels?.grafana_dashboard !== undefined);
    expect(dashboards.map((c) => c.metadata.name)).toEqual([`${name}-dashboard`]);
    const configMap = dashboards[0]!;
    expect(configMap.metadata.labels).toMatchObject({ grafana_dashboard: '1', 'llmroute.dev/route': r.metadata.name, 'llmroute.dev/environment': environment, 'app.kubernetes.io/managed-by': 'llmroute' });
    expect(configMap.metadata.namespace).toBe(r.metadata.namespace);
    expect(Object.keys(configMap.data)).toEqual([`llmroute-${name}.json`]);

    const dashboard = JSON.parse(configMap.data[`llmroute-${name}.json`]!) as Dashboard;
    expect(dashboard).toEqual(gatewayDashboard({ route: r.metadata.name, environment, ...(r.metadata.namespace ? { namespace: r.metadata.namespace } : {}) }));
    expect(dashboard.uid).toBe(environmentDashboardUid(r.metadata.name, environment));
    const current = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v.current.value]));
    expect(current).toEqual({ datasource: undefined, namespace: r.metadata.namespace, route: r.metadata.name, environment });
    // The gateway's own ConfigMap is still the first, and untouched.
    expect(configMaps(objects).map((c) => c.metadata.name)).toEqual([name, `${name}-dashboard`]);
  });

  it.each(CASES)('%s/%s: every panel query parses as far as the tests read PromQL and uses only documented, registered metrics and labels', async (file, environment) => {
    const [registered, documented] = await Promise.all([registeredMetrics(), documentedMetrics()]);
    const r = await route(file);
    const configMap = configMaps(renderEnvironment({ route: r, environment }).objects).find((c) => c.metadata.name.endsWith('-dashboard'))!;
    const dashboard = JSON.parse(Object.values(configMap.data)[0]!) as Dashboard;
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(queries.length).toBeGreaterThan(20);
    for (const { panel, expr } of queries) {
      // Balanced brackets and quotes: a cheap syntax check (promtool has no query checker; alerts go through promtool).
      expect({ panel, balanced: balanced(expr) }).toEqual({ panel, balanced: true });
      expect({ panel, expr, problems: contractProblems(expr, registered, documented) }).toEqual({ panel, expr, problems: [] });
      for (const { metric, matchers } of selectors(expr)) {
        expect({ panel, metric, matchers: matchers.map((m) => `${m.label}${m.op}"${m.value}"`) }).toEqual({ panel, metric, matchers: expect.arrayContaining(['namespace=~"$namespace"', 'route="$route"', 'environment="$environment"']) });
      }
    }
  });

  it('gives every environment its own dashboard uid, at most 40 characters (Grafana\'s limit)', async () => {
    const support = await route('examples/support-bot.yaml');
    const uids = ['staging', 'production'].map((e) => (JSON.parse(Object.values(configMaps(renderEnvironment({ route: support, environment: e }).objects)[1]!.data)[0]!) as Dashboard).uid);
    expect(new Set(uids).size).toBe(2);
    const long = environmentDashboardUid('a-very-long-route-name-for-a-dashboard', 'production-eu-west');
    expect(long.length).toBeLessThanOrEqual(40);
    expect(long).not.toBe(environmentDashboardUid('a-very-long-route-name-for-a-dashboard', 'production-eu-east'));
  });
});

/** Parentheses, brackets and braces nest and close, outside double-quoted strings. */
function balanced(expr: string): boolean {
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let quoted = false;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i]!;
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    else if ('([{'.includes(c)) stack.push(c);
    else if (c in pairs && stack.pop() !== pairs[c]) return false;
  }
  return !quoted && stack.length === 0;
}
