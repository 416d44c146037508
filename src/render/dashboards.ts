/**
 * The Grafana dashboard of a gateway environment, built here and written to dashboards/llmroute-gateway.json (the
 * golden test in test/render/alerts.test.ts keeps the two equal), and rendered per route environment into a ConfigMap
 * for the Grafana sidecar (src/render/llmroute.ts) with its variables defaulted to that environment. It uses only metrics of docs/metrics.md, selects an
 * environment with the `namespace`, `route` and `environment` variables (the gateway's default labels and the
 * scrape's namespace), and reads from the data source chosen in `datasource`.
 */
import { createHash } from 'node:crypto';
import { ERROR_OUTCOMES } from '../api/metric-names.js';

export const DASHBOARD_UID = 'llmroute-gateway';
export const DASHBOARD_FILE = 'dashboards/llmroute-gateway.json';
/** The Grafana sidecar (kiwigrid k8s-sidecar, as the Grafana Helm chart configures it) loads ConfigMaps with this label. */
export const GRAFANA_DASHBOARD_LABEL = { grafana_dashboard: '1' } as const;

interface Target {
  expr: string;
  legendFormat: string;
  instant?: boolean;
}

interface PanelSpec {
  title: string;
  description: string;
  type?: 'timeseries' | 'stat' | 'state-timeline' | 'table';
  unit?: string;
  targets: Target[];
  /** Grid width out of 24; height is 8. */
  w?: number;
  stack?: boolean;
  mappings?: unknown[];
  thresholds?: { color: string; value: number | null }[];
}

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;
/** Every gateway series of the selected environment. */
const S = 'namespace=~"$namespace", route="$route", environment="$environment"';
const RATE = '$__rate_interval';
const errors = ERROR_OUTCOMES.join('|');
const counted = ['success', ...ERROR_OUTCOMES].join('|');

const quantiles = (metric: string, by: string, legend: (q: string) => string, extra = ''): Target[] =>
  ['0.5', '0.9', '0.99'].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (${[by, 'le'].filter(Boolean).join(', ')}) (rate(${metric}_bucket{${S}${extra}}[${RATE}])))`,
    legendFormat: legend(q),
  }));

const ROWS: { title: string; panels: PanelSpec[] }[] = [
  {
    title: 'Traffic and errors',
    panels: [
      { title: 'Requests by outcome', description: 'Chat completion requests that reached routing, by final outcome (requests refused before routing, such as 429 budget_exceeded, are not counted).', unit: 'reqps', stack: true, targets: [{ expr: `sum by (outcome) (rate(llmroute_requests_total{${S}}[${RATE}]))`, legendFormat: '{{outcome}}' }] },
      { title: 'Error ratio', description: `Outcomes ${ERROR_OUTCOMES.join(', ')} over success and errors: what LLMRouteErrorBudgetBurn measures against spec.alerts.errorRatio.`, unit: 'percentunit', targets: [{ expr: `sum(rate(llmroute_requests_total{${S}, outcome=~"${errors}"}[${RATE}])) / sum(rate(llmroute_requests_total{${S}, outcome=~"${counted}"}[${RATE}]))`, legendFormat: 'error ratio' }] },
      { title: 'Requests by model and variant', description: 'Flag variants next to the baseline.', unit: 'reqps', targets: [{ expr: `sum by (model, variant) (rate(llmroute_requests_total{${S}}[${RATE}]))`, legendFormat: '{{model}} {{variant}}' }] },
      { title: 'Error ratio by variant', description: 'Each flag variant against the baseline, as the rollout analysis compares them.', unit: 'percentunit', targets: [{ expr: `sum by (variant) (rate(llmroute_requests_total{${S}, outcome=~"${errors}"}[${RATE}])) / sum by (variant) (rate(llmroute_requests_total{${S}, outcome=~"${counted}"}[${RATE}]))`, legendFormat: '{{variant}}' }] },
    ],
  },
  {
    title: 'Latency',
    panels: [
      { title: 'Request duration', description: 'Whole-request duration, every attempt, backoff and fallback included.', unit: 's', targets: quantiles('llmroute_request_duration_seconds', '', (q) => `p${Number(q) * 100}`) },
      { title: 'Time to first token (p99) by provider', description: 'From the request to the first content sent to the client, by the provider that answered.', unit: 's', targets: [{ expr: `histogram_quantile(0.99, sum by (model, provider, le) (rate(llmroute_time_to_first_token_seconds_bucket{${S}}[${RATE}])))`, legendFormat: '{{model}} via {{provider}}' }] },
      { title: 'Request duration (p99) by variant', description: 'Flag variants against the baseline.', unit: 's', targets: [{ expr: `histogram_quantile(0.99, sum by (variant, le) (rate(llmroute_request_duration_seconds_bucket{${S}}[${RATE}])))`, legendFormat: '{{variant}}' }] },
      { title: 'Upstream attempt duration (p99)', description: 'One upstream call, by provider and result.', unit: 's', targets: [{ expr: `histogram_quantile(0.99, sum by (provider, result, le) (rate(llmroute_upstream_attempt_duration_seconds_bucket{${S}}[${RATE}])))`, legendFormat: '{{provider}} {{result}}' }] },
    ],
  },
  {
    title: 'Providers',
    panels: [
      { title: 'Upstream attempts by result', description: 'success, an error class, or a skip (breaker open, cool-down, no key, limiter).', unit: 'reqps', stack: true, targets: [{ expr: `sum by (provider, result) (rate(llmroute_upstream_attempts_total{${S}}[${RATE}]))`, legendFormat: '{{provider}} {{result}}' }] },
      { title: 'Errors by class', description: 'Failed attempts by error class: rate_limited and quota_exhausted both arrive as 429; only backoff fixes the first.', unit: 'reqps', stack: true, targets: [{ expr: `sum by (result) (rate(llmroute_upstream_attempts_total{${S}, result!~"success|skipped_.*"}[${RATE}]))`, legendFormat: '{{result}}' }] },
      { title: 'Fallbacks by depth', description: 'Requests answered by a fallback step (depth 1 is the first fallback), against all answered requests.', unit: 'percentunit', targets: [{ expr: `sum by (model, depth) (rate(llmroute_fallbacks_total{${S}}[${RATE}])) / on (model) group_left () sum by (model) (rate(llmroute_requests_total{${S}, outcome="success"}[${RATE}]))`, legendFormat: '{{model}} depth {{depth}}' }] },
      {
        title: 'Circuit breakers',
        description: 'Per provider and model: closed, open, or half-open (probing).',
        type: 'state-timeline',
        targets: [{ expr: `max by (provider, model) (llmroute_circuit_breaker_state{${S}})`, legendFormat: '{{provider}}/{{model}}' }],
        mappings: [{ type: 'value', options: { '0': { text: 'closed', color: 'green', index: 0 }, '1': { text: 'open', color: 'red', index: 1 }, '2': { text: 'half-open', color: 'orange', index: 2 } } }],
      },
      { title: 'Rate limits', description: "Requests waiting for admission under spec.providers[].limits and the p99 wait; holds from the providers' rate-limit headers, by reason; 1 while Redis is unreachable and limits run on local shares.", unit: 'short', targets: [{ expr: `sum by (provider) (llmroute_ratelimit_queue_depth{${S}})`, legendFormat: '{{provider}} waiting' }, { expr: `histogram_quantile(0.99, sum by (provider, le) (rate(llmroute_ratelimit_wait_seconds_bucket{${S}}[${RATE}])))`, legendFormat: '{{provider}} p99 wait (s)' }, { expr: `sum by (provider, reason) (increase(llmroute_ratelimit_holds_total{${S}}[${RATE}]))`, legendFormat: '{{provider}} held back ({{reason}})' }, { expr: `max(llmroute_ratelimit_store_degraded{${S}})`, legendFormat: 'Redis unreachable' }] },
      { title: 'Model drift and malformed events', description: 'Answers from another model than the pin; provider stream events that could not be read.', unit: 'short', targets: [{ expr: `sum by (provider, pinned, answered) (increase(llmroute_model_drift_total{${S}}[${RATE}]))`, legendFormat: '{{provider}}: {{pinned}} answered by {{answered}}' }, { expr: `sum by (provider) (increase(llmroute_malformed_events_total{${S}}[${RATE}]))`, legendFormat: '{{provider}} malformed events' }] },
    ],
  },
  {
    title: 'Tokens and cost',
    panels: [
      { title: 'Tokens per minute', description: 'Input and output tokens of answered requests, as providers reported them.', unit: 'short', stack: true, targets: [{ expr: `sum by (model, direction) (rate(llmroute_tokens_total{${S}}[${RATE}])) * 60`, legendFormat: '{{model}} {{direction}}' }] },
      { title: 'Spend per hour', description: 'USD per hour: the answers, and the waste (charged attempts that did not produce the answer).', unit: 'currencyUSD', stack: true, targets: [{ expr: `sum by (model, provider) (rate(llmroute_cost_usd_total{${S}}[${RATE}])) * 3600`, legendFormat: '{{model}} via {{provider}}' }, { expr: `sum(rate(llmroute_wasted_cost_usd_total{${S}}[${RATE}])) * 3600`, legendFormat: 'wasted' }] },
      { title: 'Spend per hour by client', description: 'Who spends.', unit: 'currencyUSD', stack: true, targets: [{ expr: `sum by (client) (rate(llmroute_cost_usd_total{${S}}[${RATE}])) * 3600`, legendFormat: '{{client}}' }] },
      { title: 'Cost per request by variant', description: 'Mean USD per successful request: each flag variant against the baseline, as the rollout analysis compares them.', unit: 'currencyUSD', targets: [{ expr: `sum by (variant) (rate(llmroute_cost_usd_total{${S}}[${RATE}])) / sum by (variant) (rate(llmroute_requests_total{${S}, outcome="success"}[${RATE}]))`, legendFormat: '{{variant}}' }] },
      { title: 'Prompt tokens (p99)', description: 'Input tokens per answered request: exposes prompt stuffing.', unit: 'short', targets: [{ expr: `histogram_quantile(0.99, sum by (model, le) (rate(llmroute_prompt_tokens_bucket{${S}}[${RATE}])))`, legendFormat: '{{model}}' }] },
      { title: 'Unpriced answers and coalesced requests', description: 'Answers from a model with no price (their cost is in no counter and no budget: add it to spec.prices), and requests answered by sharing one in flight.', unit: 'short', targets: [{ expr: `sum by (model) (increase(llmroute_unknown_price_total{${S}}[${RATE}]))`, legendFormat: '{{model}} unpriced' }, { expr: `sum by (model) (increase(llmroute_coalesced_requests_total{${S}}[${RATE}]))`, legendFormat: '{{model}} coalesced' }] },
    ],
  },
  {
    title: 'Budget',
    panels: [
      { title: 'Spend in the dashboard range', description: 'Answers plus waste over the selected time range. Compare with the limits in the LLMRoute and its status (kubectl get llmr -o yaml: status.environments[].spend).', type: 'stat', unit: 'currencyUSD', w: 6, targets: [{ expr: `(sum(increase(llmroute_cost_usd_total{${S}}[$__range])) or vector(0)) + (sum(increase(llmroute_wasted_cost_usd_total{${S}}[$__range])) or vector(0))`, legendFormat: 'spend', instant: true }] },
      { title: 'Forecast: spend until the UTC day ends', description: 'At the spend rate of the last hour, what the rest of the UTC day will cost: LLMRouteBudgetBurnRateHigh fires when this exceeds a daily budget.', type: 'stat', unit: 'currencyUSD', w: 6, targets: [{ expr: `((sum(rate(llmroute_cost_usd_total{${S}}[1h])) or vector(0)) + (sum(rate(llmroute_wasted_cost_usd_total{${S}}[1h])) or vector(0))) * (86400 - time() % 86400)`, legendFormat: 'rest of the day', instant: true }] },
      { title: 'Budget thresholds crossed', description: 'alertAt crossings in the selected range, by scope (environment or client:<name>), window and fraction.', type: 'table', w: 6, targets: [{ expr: `sum by (scope, window, fraction) (increase(llmroute_budget_threshold_crossed_total{${S}}[$__range]))`, legendFormat: '{{scope}} {{window}} {{fraction}}', instant: true }] },
      { title: 'Degraded requests and budget store', description: 'Requests served by the cheaper model because a degrade budget is spent; 1 while Redis is unreachable and budgets run on local shares.', w: 6, unit: 'short', targets: [{ expr: `sum by (model, to) (rate(llmroute_budget_degraded_requests_total{${S}}[${RATE}]))`, legendFormat: '{{model}} → {{to}} (req/s)' }, { expr: `max(llmroute_budget_store_degraded{${S}})`, legendFormat: 'Redis unreachable' }] },
      { title: 'Budget left and spent, by scope and window', description: 'What each budget window has left (limit minus spent and reserved; the smallest any pod reports) and what is spent in the current UTC day or month, as the ledger holds it. LLMRouteBudgetBurnRateHigh projects spend against what is left.', unit: 'currencyUSD', w: 24, targets: [{ expr: `min by (scope, window) (llmroute_budget_remaining_usd{${S}})`, legendFormat: '{{scope}} {{window}} left' }, { expr: `max by (scope, window) (llmroute_budget_spent_usd{${S}})`, legendFormat: '{{scope}} {{window}} spent' }] },
    ],
  },
  {
    title: 'Streams and health',
    panels: [
      { title: 'Streams by ending', description: 'complete, continued (after a mid-stream failover), truncated (an error event instead of [DONE]), error (before any content), client_gone.', unit: 'reqps', stack: true, targets: [{ expr: `sum by (ending) (rate(llmroute_streams_total{${S}}[${RATE}]))`, legendFormat: '{{ending}}' }] },
      { title: 'Ready gateway pods', description: 'Pods reporting ready (a valid config and every required key) out of those scraped.', type: 'stat', unit: 'short', w: 6, targets: [{ expr: `sum(llmroute_gateway_ready{${S}})`, legendFormat: 'ready', instant: true }, { expr: `count(llmroute_gateway_ready{${S}})`, legendFormat: 'scraped', instant: true }] },
      { title: 'Config and key reloads', description: 'Config reloads (a failure keeps the previous config serving), whether every pod\'s last config read was valid (1) or one rejects its config (0), and key files that changed or went missing.', w: 6, unit: 'short', targets: [{ expr: `min(llmroute_config_last_reload_successful{${S}})`, legendFormat: 'config valid' }, { expr: `sum by (result) (increase(llmroute_config_reloads_total{${S}}[${RATE}]))`, legendFormat: 'config {{result}}' }, { expr: `sum by (provider, result) (increase(llmroute_key_reloads_total{${S}}[${RATE}]))`, legendFormat: 'key {{provider}} {{result}}' }] },
    ],
  },
];

function panel(spec: PanelSpec, id: number, x: number, y: number): Record<string, unknown> {
  const type = spec.type ?? 'timeseries';
  return {
    id,
    type,
    title: spec.title,
    description: spec.description,
    datasource: DATASOURCE,
    gridPos: { h: 8, w: spec.w ?? 12, x, y },
    fieldConfig: {
      defaults: {
        ...(spec.unit ? { unit: spec.unit } : {}),
        ...(spec.mappings ? { mappings: spec.mappings } : {}),
        ...(type === 'timeseries' ? { custom: { fillOpacity: spec.stack ? 30 : 10, lineWidth: 1, stacking: { mode: spec.stack ? 'normal' : 'none', group: 'A' } } } : {}),
        ...(type === 'state-timeline' ? { custom: { fillOpacity: 80, lineWidth: 0 } } : {}),
      },
      overrides: [],
    },
    options:
      type === 'stat'
        ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'none', textMode: 'value_and_name' }
        : type === 'table'
          ? { showHeader: true }
          : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    targets: spec.targets.map((t, i) => ({
      datasource: DATASOURCE,
      refId: String.fromCharCode(65 + i),
      expr: t.expr,
      legendFormat: t.legendFormat,
      ...(t.instant ? { instant: true, range: false } : { range: true }),
      ...(type === 'table' ? { format: 'table' } : {}),
    })),
  };
}

const queryVariable = (name: string, label: string, query: string, value?: string) => ({
  name,
  label,
  type: 'query',
  datasource: DATASOURCE,
  query: { query, refId: `${name}-variable` },
  definition: query,
  refresh: 2,
  sort: 1,
  includeAll: false,
  multi: false,
  hide: 0,
  regex: '',
  // A default: Grafana still lists the other values, so one dashboard can look at another environment.
  current: value === undefined ? {} : { selected: true, text: value, value },
  options: value === undefined ? [] : [{ selected: true, text: value, value }],
});

/** What a dashboard rendered for one route environment opens on. */
export interface DashboardDefaults {
  route: string;
  environment: string;
  /** Where the gateway runs; without one, the namespace variable keeps Grafana's default (the first value). */
  namespace?: string;
}

/** Grafana's limit on a dashboard uid. */
const MAX_UID = 40;

/** The uid of an environment's dashboard: `llmroute-<route>-<environment>`, shortened with a hash when too long. */
export function environmentDashboardUid(route: string, environment: string): string {
  const uid = `llmroute-${route}-${environment}`;
  if (uid.length <= MAX_UID) return uid;
  const hash = createHash('sha256').update(uid).digest('hex').slice(0, 8);
  return `${uid.slice(0, MAX_UID - hash.length - 1)}-${hash}`;
}

/** The file name of an environment's dashboard in its ConfigMap (the Grafana sidecar writes it under that name). */
export const environmentDashboardFile = (route: string, environment: string): string => `llmroute-${route}-${environment}.json`;

/**
 * The dashboard, as Grafana's JSON model (schemaVersion 39). Without defaults, the generic one of
 * dashboards/llmroute-gateway.json; with them, one environment's, its variables set to that route and environment.
 */
export function gatewayDashboard(defaults?: DashboardDefaults): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    for (const spec of row.panels) {
      const w = spec.w ?? 12;
      if (x + w > 24) {
        x = 0;
        y += 8;
      }
      panels.push(panel(spec, id++, x, y));
      x += w;
    }
    y += 8;
  }
  return {
    uid: defaults ? environmentDashboardUid(defaults.route, defaults.environment) : DASHBOARD_UID,
    title: defaults ? `llmroute gateway: ${defaults.route} ${defaults.environment}` : 'llmroute gateway',
    description: 'One llmroute gateway environment: traffic, errors by class, latency and time to first token, tokens and cost, budgets, breakers, fallbacks, flag variants against the baseline, streams. Metrics: docs/metrics.md; alerts: docs/runbooks.md.',
    tags: ['llmroute', 'llm'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    timezone: 'utc',
    refresh: '30s',
    links: [],
    annotations: { list: [] },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', refresh: 1, hide: 0, regex: '', includeAll: false, multi: false, current: {}, options: [] },
        queryVariable('namespace', 'Namespace', 'label_values(llmroute_gateway_ready, namespace)', defaults?.namespace),
        queryVariable('route', 'Route', 'label_values(llmroute_gateway_ready{namespace=~"$namespace"}, route)', defaults?.route),
        queryVariable('environment', 'Environment', 'label_values(llmroute_gateway_ready{namespace=~"$namespace", route="$route"}, environment)', defaults?.environment),
      ],
    },
    panels,
  };
}

/** The file's content: the dashboard as indented JSON with a final newline. */
export function gatewayDashboardJson(defaults?: DashboardDefaults): string {
  return `${JSON.stringify(gatewayDashboard(defaults), null, 2)}\n`;
}
