/**
 * The metrics contract (docs/metrics.md) and the PromQL the alert rules and dashboards use, as far as tests need them:
 * the documented tables, what the gateway and controller registries register, and a check of an expression's metrics,
 * labels and label values against both. Shared by test/render/alerts.test.ts, test/render/dashboard.test.ts and
 * test/slo/.
 */
import { readFile } from 'node:fs/promises';
import { OUTCOMES } from '../../src/api/metric-names.js';
import { ControllerMetrics } from '../../src/controller/metrics.js';
import { ERROR_CLASSES } from '../../src/gateway/errors.js';
import { GatewayMetrics } from '../../src/gateway/metrics.js';
import { REFUSAL_REASONS } from '../../src/gateway/refusal.js';

// --- The contract in docs/metrics.md ---------------------------------------------------------------------------

export interface DocumentedMetric {
  name: string;
  type: string;
  labels: string[];
  planned: boolean;
  /** The section of docs/metrics.md: `Gateway`, `Controller` or `Planned`. */
  section: string;
}

/** The metric tables of docs/metrics.md: Gateway, Controller (produced) and Planned. */
export async function documentedMetrics(): Promise<DocumentedMetric[]> {
  const text = await readFile('docs/metrics.md', 'utf8');
  const metrics: DocumentedMetric[] = [];
  let section = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) section = line.slice(3).trim();
    if (!['Gateway', 'Controller', 'Planned'].includes(section) || !line.startsWith('| `')) continue;
    const [first = '', type = '', labels = ''] = line.split('|').slice(1).map((cell) => cell.trim());
    const names = [...first.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    for (const name of names) metrics.push({ name, type, labels: [...labels.matchAll(/`([^`]+)`/g)].map((m) => m[1]!), planned: section === 'Planned', section });
  }
  return metrics;
}

/** A documented name may end in `*` (prom-client's default metrics). */
export const documents = (doc: DocumentedMetric, name: string) => (doc.name.endsWith('*') ? name.startsWith(doc.name.slice(0, -1)) : doc.name === name);

export interface RegisteredMetric {
  name: string;
  type: string;
  labels: string[];
}

/** What the gateway and the controller register, from their prom-client registries. */
export async function registeredMetrics(): Promise<RegisteredMetric[]> {
  const registries = [new GatewayMetrics({ route: 'r', environment: 'e' }).registry, new ControllerMetrics().registry];
  const metrics: RegisteredMetric[] = [];
  for (const registry of registries) {
    const json = await registry.getMetricsAsJSON();
    for (const metric of registry.getMetricsAsArray()) {
      const name = (metric as unknown as { name: string }).name;
      const labels = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
      metrics.push({ name, type: String(json.find((j) => j.name === name)?.type), labels: [...labels] });
    }
  }
  return metrics;
}

export const DEFAULT_METRIC = /^llmroute_(gateway|controller)_(process|nodejs)_/;
/** Labels every gateway series has: its default labels and what the scrape adds. */
export const GATEWAY_LABELS = ['route', 'environment', 'job', 'namespace', 'pod', 'instance', 'service', 'endpoint', 'container'];
export const SCRAPE_LABELS = ['job', 'namespace', 'pod', 'instance', 'service', 'endpoint', 'container', 'exported_namespace'];

// --- PromQL, as far as these tests need it ---------------------------------------------------------------------

export const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/;
const KEYWORDS = new Set(['and', 'or', 'unless', 'offset', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/** The metric names an expression reads: selectors' names and `__name__` matchers. */
export function metricNames(expr: string): string[] {
  const names = [...expr.matchAll(/__name__\s*=~?\s*"([^"]*)"/g)].flatMap((m) => m[1]!.split('|'));
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+[0-9a-z]+/g, ' ');
  for (const match of stripped.matchAll(/(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = match;
    if (call || KEYWORDS.has(name!)) continue;
    names.push(name!);
  }
  return [...new Set(names)];
}

export interface Selector {
  metric: string | undefined;
  matchers: { label: string; op: string; value: string }[];
}

export function selectors(expr: string): Selector[] {
  return [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}/g)].map((m) => ({
    metric: m[1],
    matchers: [...m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map((x) => ({ label: x[1]!, op: x[2]!, value: x[3]! })),
  }));
}

export const groupingLabels = (expr: string) => [...expr.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()).filter(Boolean));

/** Values a metric's label may take, where the code fixes them (docs/metrics.md, Label values). */
export const LABEL_VALUES: Record<string, Record<string, readonly string[]>> = {
  llmroute_upstream_attempts_total: { result: ['success', ...ERROR_CLASSES, 'skipped_breaker_open', 'skipped_cooldown', 'skipped_no_key', 'skipped_limiter'] },
  llmroute_requests_total: { outcome: [...OUTCOMES, 'client_gone'] },
  llmroute_streams_total: { ending: ['complete', 'continued', 'truncated', 'error', 'client_gone'] },
  llmroute_tokens_total: { direction: ['input', 'output'] },
  llmroute_config_reloads_total: { result: ['success', 'failure'] },
  llmroute_key_reloads_total: { result: ['changed', 'missing'] },
  llmroute_budget_threshold_crossed_total: { window: ['daily', 'monthly'] },
  llmroute_requests_refused_total: { reason: REFUSAL_REASONS },
  llmroute_ratelimit_holds_total: { unit: ['requests', 'tokens'], reason: ['remaining', 'slower_refill', 'retry_after'] },
};

/** Checks an expression's metrics and labels against the registries and the docs; returns the problems. */
export function contractProblems(expr: string, registered: RegisteredMetric[], documented: DocumentedMetric[]): string[] {
  const problems: string[] = [];
  const base = (name: string) => (registered.some((r) => r.name === name) ? name : name.replace(HISTOGRAM_SUFFIX, ''));
  const metricsUsed = metricNames(expr).map(base);
  const allowed = new Set(['le', ...GATEWAY_LABELS, ...SCRAPE_LABELS]);
  for (const name of metricsUsed) {
    if (name === 'up') continue;
    const code = registered.find((r) => r.name === name);
    const doc = documented.find((d) => documents(d, name));
    if (!code) problems.push(`${name} is not registered by the gateway or the controller`);
    if (!doc) problems.push(`${name} is not in docs/metrics.md`);
    else if (doc.planned) problems.push(`${name} is only planned in docs/metrics.md`);
    for (const label of code?.labels ?? []) allowed.add(label);
  }
  for (const { metric, matchers } of selectors(expr)) {
    const names = metric ? [base(metric)] : matchers.filter((m) => m.label === '__name__').flatMap((m) => m.value.split('|'));
    const labels = new Set(['__name__', ...GATEWAY_LABELS, ...SCRAPE_LABELS, ...names.flatMap((n) => registered.find((r) => r.name === n)?.labels ?? []), ...(metric?.endsWith('_bucket') ? ['le'] : [])]);
    for (const { label, op, value } of matchers) {
      if (!labels.has(label)) problems.push(`${metric ?? names.join('|')} has no label ${label}`);
      const values = names.length === 1 ? LABEL_VALUES[names[0]!]?.[label] : undefined;
      if (values && (op === '=' || op === '=~') && !value.includes('$')) {
        for (const v of value.split('|')) if (!values.includes(v)) problems.push(`${label}="${v}" is not a value the code gives ${label}`);
      }
    }
  }
  for (const label of groupingLabels(expr)) if (!allowed.has(label)) problems.push(`grouping by ${label}, which none of ${metricsUsed.join(', ')} has`);
  return problems;
}
