/**
 * The alert rules rendered into each environment's PrometheusRule: the single place they come from. They use the
 * metrics of docs/metrics.md exactly as the gateway (src/gateway/metrics.ts) and the controller
 * (src/controller/metrics.ts) export them; each alert has a section in docs/runbooks.md, whose anchor is the alert's
 * name in lower case. test/render/alerts.promtool.test.ts runs `promtool test rules` on every one of them.
 *
 * Selection: the ServiceMonitor sets `jobLabel: app.kubernetes.io/instance`, so a gateway's series carry
 * `job="<route>-<environment>"`, and Prometheus adds the pod's `namespace`. Gateway alerts select on those two
 * labels; the controller's rollout gauge carries `route`, `environment` and the route's namespace as its own labels.
 *
 * Counters with labels appear at their first increment, with the value 1, and `increase()` cannot see that first
 * step. Alerts on rare events (one quota exhaustion, one rejected key, one threshold crossing) therefore use
 * {@link recent}, which also counts a series that appeared within the window.
 */
import { BASELINE_VARIANT, ERROR_OUTCOMES, METRIC } from '../api/metric-names.js';
import type { Budget, LLMRoute } from '../api/schema.js';
import { instanceName } from './labels.js';

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

/** Every alert llmroute renders, in the order rendered. Budget, Redis and rollout alerts only where they apply. */
export const ALERT_NAMES = [
  'LLMRouteGatewayDown',
  'LLMRouteGatewayNotReady',
  'LLMRouteErrorBudgetBurn',
  'LLMRouteLatencyHigh',
  'LLMRouteTimeToFirstTokenHigh',
  'LLMRouteProviderQuotaExhausted',
  'LLMRouteProviderRateLimited',
  'LLMRouteCircuitOpen',
  'LLMRouteFallbackRateHigh',
  'LLMRouteKeyAuthFailing',
  'LLMRouteModelDrift',
  'LLMRouteStreamStalls',
  'LLMRouteStreamsTruncated',
  'LLMRouteConfigReloadFailing',
  'LLMRouteModelPriceUnknown',
  'LLMRouteBudgetStoreDegraded',
  'LLMRouteRateLimitStoreDegraded',
  'LLMRouteBudgetThresholdReached',
  'LLMRouteBudgetBurnRateHigh',
  'LLMRouteBudgetExhausted',
  'LLMRouteRolloutAborted',
] as const;
export type AlertName = (typeof ALERT_NAMES)[number];

/** The metric names the rules use (docs/metrics.md); the three the controller also reads come from METRIC. */
export const RULE_METRICS = {
  up: 'up',
  requests: METRIC.requests,
  requestDuration: METRIC.requestDuration,
  cost: METRIC.cost,
  wastedCost: 'llmroute_wasted_cost_usd_total',
  timeToFirstToken: 'llmroute_time_to_first_token_seconds',
  attempts: 'llmroute_upstream_attempts_total',
  fallbacks: 'llmroute_fallbacks_total',
  breakerState: 'llmroute_circuit_breaker_state',
  drift: 'llmroute_model_drift_total',
  streams: 'llmroute_streams_total',
  configReloadSuccessful: 'llmroute_config_last_reload_successful',
  unknownPrice: 'llmroute_unknown_price_total',
  ready: 'llmroute_gateway_ready',
  budgetStoreDegraded: 'llmroute_budget_store_degraded',
  rateLimitStoreDegraded: 'llmroute_ratelimit_store_degraded',
  budgetThreshold: 'llmroute_budget_threshold_crossed_total',
  budgetDegraded: 'llmroute_budget_degraded_requests_total',
  budgetRejected: 'llmroute_budget_rejected_requests_total',
  budgetRemaining: 'llmroute_budget_remaining_usd',
  rolloutPercent: 'llmroute_controller_rollout_percent',
} as const;
const M = RULE_METRICS;

/**
 * Multi-window, multi-burn-rate error budget alerts (Google SRE workbook, "Alerting on SLOs"): each pages when both
 * its long and its short window burn the budget `factor` times faster than sustainable. 14.4× over 1h spends 2% of
 * a 30-day budget; 6× over 6h spends 5%. The short window makes the alert stop soon after the errors do.
 */
export const BURN_RATE_WINDOWS = [
  { long: '1h', short: '5m', factor: 14.4, for: '2m' },
  { long: '6h', short: '30m', factor: 6, for: '15m' },
] as const;

/** How long a rare event keeps its alert firing. */
const EVENT_WINDOW = {
  /** A quota-exhausted provider is cooled down for 15 minutes and then tried again: a little longer than that. */
  quota: '20m',
  keyAuth: '15m',
  drift: '1h',
  unknownPrice: '1h',
  budgetThreshold: '1h',
  budgetDegraded: '15m',
  rolloutAborted: '1h',
} as const;

/** Rate windows of the spend projection, per budget window: a day is judged on the last hour, a month on 6 hours. */
const SPEND_RATE_WINDOW = { daily: '1h', monthly: '6h' } as const;
/** Seconds until the current UTC day or month ends (Unix time has no leap seconds: days are 86400 s). */
const SECONDS_LEFT = {
  daily: '(86400 - time() % 86400)',
  monthly: '(scalar(days_in_month() - day_of_month() + 1) * 86400 - time() % 86400)',
} as const;

const BY = 'namespace, job';

/** A number as PromQL and humans write it: 14.4 × 0.05 is 0.72, not 0.7200000000000001. */
export function promNumber(value: number): string {
  return String(Number(value.toPrecision(12)));
}

/** The `fraction` label value the gateway gives an alertAt fraction: JavaScript's String() of the number. */
export const fractionLabel = (fraction: number): string => String(fraction);

/**
 * Events of a counter within `range`: its increase, or, for a series that appeared within `range` (a labelled
 * counter's first increment, invisible to increase()), its value. Aggregate the result with sum by (...).
 */
export function recent(selector: string, range: string): string {
  return `(increase(${selector}[${range}]) > 0 or (${selector} > 0 unless ${selector} offset ${range}))`;
}

const quote = (value: string) => JSON.stringify(value);

/** Every budget of the environment: its own and its clients', as the gateway's `scope` label names them. */
export function budgetsOf(route: LLMRoute, environment: string): { scope: string; client?: string; budget: Budget }[] {
  const env = route.spec.environments.find((e) => e.name === environment);
  return [
    ...(env?.budget ? [{ scope: 'environment', budget: env.budget }] : []),
    ...(route.spec.clients ?? []).flatMap((c) => (c.budget ? [{ scope: `client:${c.name}`, client: c.name, budget: c.budget }] : [])),
  ];
}

/** The distinct alertAt fractions of every budget of the environment, ascending: one threshold alert each. */
export function alertAtFractions(route: LLMRoute, environment: string): number[] {
  return [...new Set(budgetsOf(route, environment).flatMap((b) => b.budget.alertAt))].sort((a, b) => a - b);
}

/** Whether a provider or a client has rate limits: only their limiters ask Redis, and notice when it is gone. */
function hasRateLimits(route: LLMRoute): boolean {
  return [...route.spec.providers, ...(route.spec.clients ?? [])].some((entity) => entity.limits !== undefined);
}

/** Flags of the environment whose percentage the controller steps (and may roll back). */
function rolloutFlags(route: LLMRoute, environment: string): string[] {
  return (route.spec.flags ?? []).filter((f) => f.rollout && (!f.environments || f.environments.includes(environment))).map((f) => f.name);
}

export function alertRuleGroups(route: LLMRoute, environment: string, namespace: string | undefined): RuleGroup[] {
  const name = instanceName(route, environment);
  const thresholds = route.spec.alerts;
  const base = [`job=${quote(name)}`, ...(namespace ? [`namespace=${quote(namespace)}`] : [])];
  /** A selector of `metric` for this gateway, with extra matchers. */
  const sel = (metric: string, ...extra: string[]) => `${metric}{${[...base, ...extra].join(', ')}}`;
  const where = `${name}${namespace ? ` (namespace ${namespace})` : ''}`;
  const rules: AlertRule[] = [];
  const add = (alert: AlertName, severity: 'critical' | 'warning', rule: { expr: string; for?: string; labels?: Record<string, string>; summary: string; description: string }) => {
    rules.push({
      alert,
      expr: rule.expr,
      ...(rule.for ? { for: rule.for } : {}),
      labels: { severity, llmroute_route: route.metadata.name, llmroute_environment: environment, ...rule.labels },
      annotations: { summary: rule.summary, description: rule.description, runbook_url: `${thresholds.runbookURL}#${alert.toLowerCase()}` },
    });
  };
  const attempts = (...extra: string[]) => sel(M.attempts, ...extra);
  const ratio = (numerator: string, denominator: string, by: string, range: string) =>
    `sum by (${by}) (rate(${numerator}[${range}])) / sum by (${by}) (rate(${denominator}[${range}]))`;
  /** Upstream attempts that reached the provider: skips (breaker open, cool-down, no key, limiter) are not attempts. */
  const sentAttempts = attempts('result!~"skipped_.*"');

  // --- Availability -------------------------------------------------------------------------------------------

  add('LLMRouteGatewayDown', 'critical', {
    expr: `sum by (${BY}) (${sel(M.up)}) == 0 or absent(${sel(M.up)})`,
    for: '5m',
    summary: `The llmroute gateway ${name} is down`,
    description: `No gateway pod of ${where} has been scrapable for 5 minutes (or Prometheus finds none): the application cannot reach any LLM provider through it.`,
  });

  add('LLMRouteGatewayNotReady', 'critical', {
    expr: `min by (${BY}, pod) (${sel(M.ready)}) == 0`,
    for: '5m',
    summary: `Gateway pod {{ $labels.pod }} of ${name} is not ready`,
    description: `Gateway pod {{ $labels.pod }} of ${where} has reported llmroute_gateway_ready 0 for 5 minutes: a provider key it requires is missing or empty, so it answers 503 gateway_not_ready and Kubernetes sends it no traffic.`,
  });

  // --- Errors and latency -------------------------------------------------------------------------------------

  const errors = sel(M.requests, `outcome=~${quote(ERROR_OUTCOMES.join('|'))}`);
  const counted = sel(M.requests, `outcome=~${quote(['success', ...ERROR_OUTCOMES].join('|'))}`);
  for (const window of BURN_RATE_WINDOWS) {
    const threshold = Math.min(window.factor * thresholds.errorRatio, 1);
    // A threshold clamped to 1 is reached only when every request fails; `>` would never be.
    const op = threshold >= 1 ? '>=' : '>';
    const errorRatio = (range: string) => `(${ratio(errors, counted, BY, range)})`;
    add('LLMRouteErrorBudgetBurn', 'critical', {
      expr: `${errorRatio(window.long)} ${op} ${promNumber(threshold)} and ${errorRatio(window.short)} ${op} ${promNumber(threshold)}`,
      for: window.for,
      labels: { long_window: window.long, short_window: window.short },
      summary: `${name} is burning its error budget ${window.factor}× too fast`,
      description: `{{ $value | humanizePercentage }} of the requests to ${where} failed over the last ${window.long} (outcomes ${ERROR_OUTCOMES.join(', ')}), and over the last ${window.short} too; the error budget (spec.alerts.errorRatio) is ${promNumber(thresholds.errorRatio * 100)}%, so it is burning ${window.factor}× faster than sustainable.`,
    });
  }

  add('LLMRouteLatencyHigh', 'warning', {
    expr: `histogram_quantile(0.99, sum by (${BY}, model, le) (rate(${sel(`${M.requestDuration}_bucket`)}[5m]))) > ${promNumber(thresholds.p99LatencySeconds)}`,
    for: '10m',
    summary: `p99 latency of model {{ $labels.model }} on ${name} is over ${promNumber(thresholds.p99LatencySeconds)}s`,
    description: `The 99th percentile of whole-request duration (every attempt included) for model {{ $labels.model }} on ${where} has been {{ $value | humanizeDuration }} for 10 minutes, over spec.alerts.p99LatencySeconds (${promNumber(thresholds.p99LatencySeconds)}s).`,
  });

  add('LLMRouteTimeToFirstTokenHigh', 'warning', {
    expr: `histogram_quantile(0.99, sum by (${BY}, model, provider, le) (rate(${sel(`${M.timeToFirstToken}_bucket`)}[5m]))) > ${promNumber(thresholds.p99TimeToFirstTokenSeconds)}`,
    for: '10m',
    summary: `p99 time to first token of model {{ $labels.model }} via {{ $labels.provider }} on ${name} is over ${promNumber(thresholds.p99TimeToFirstTokenSeconds)}s`,
    description: `The 99th percentile of time to first token for model {{ $labels.model }} answered by provider {{ $labels.provider }} on ${where} has been {{ $value | humanizeDuration }} for 10 minutes, over spec.alerts.p99TimeToFirstTokenSeconds (${promNumber(thresholds.p99TimeToFirstTokenSeconds)}s).`,
  });

  // --- Providers ----------------------------------------------------------------------------------------------

  add('LLMRouteProviderQuotaExhausted', 'critical', {
    expr: `sum by (${BY}, provider, model) (${recent(attempts('result=~"quota_exhausted|skipped_cooldown"'), EVENT_WINDOW.quota)}) > 0`,
    summary: `Provider {{ $labels.provider }} has no quota left for {{ $labels.model }} (${name})`,
    description: `Provider {{ $labels.provider }} answered 429 insufficient_quota for model {{ $labels.model }} on ${where} in the last ${EVENT_WINDOW.quota}, or the gateway is skipping it while it cools down: the account is out of credit or over its spend limit. Backoff does not fix this; requests go to the fallback chain, or fail if there is none.`,
  });

  add('LLMRouteProviderRateLimited', 'warning', {
    expr: `${ratio(attempts('result="rate_limited"'), sentAttempts, `${BY}, provider`, '10m')} > ${promNumber(thresholds.rateLimitedRatio)}`,
    for: '15m',
    summary: `Provider {{ $labels.provider }} is rate limiting ${name}`,
    description: `{{ $value | humanizePercentage }} of the attempts at provider {{ $labels.provider }} from ${where} have been answered 429 rate_limited for 15 minutes (spec.alerts.rateLimitedRatio: ${promNumber(thresholds.rateLimitedRatio * 100)}%). Retries and fallbacks add latency and cost; the provider's limits or spec.providers[].limits need raising.`,
  });

  add('LLMRouteCircuitOpen', 'warning', {
    expr: `max by (${BY}, provider, model) (${sel(M.breakerState)}) > 0`,
    for: '5m',
    summary: `Circuit breaker for {{ $labels.provider }}/{{ $labels.model }} on ${name} is open`,
    description: `The circuit breaker for provider {{ $labels.provider }} and model {{ $labels.model }} on ${where} has been open or half-open (probing) for 5 minutes: its failure ratio is over spec.circuitBreaker.failureRatio, and requests skip it for the next step of the fallback chain.`,
  });

  add('LLMRouteFallbackRateHigh', 'warning', {
    expr: `${ratio(sel(M.fallbacks), sel(M.requests, 'outcome="success"'), `${BY}, model`, '15m')} > ${promNumber(thresholds.fallbackRatio)}`,
    for: '15m',
    summary: `{{ $value | humanizePercentage }} of model {{ $labels.model }}'s answers on ${name} come from a fallback`,
    description: `For 15 minutes, {{ $value | humanizePercentage }} of the successful requests for model {{ $labels.model }} on ${where} were answered by a fallback step, not the primary (spec.alerts.fallbackRatio: ${promNumber(thresholds.fallbackRatio * 100)}%): the primary provider is quietly failing, and the fallback may be slower, dearer or a different model.`,
  });

  add('LLMRouteKeyAuthFailing', 'warning', {
    expr: `sum by (${BY}, provider) (${recent(attempts('result=~"auth_failed|skipped_no_key"'), EVENT_WINDOW.keyAuth)}) > 0`,
    summary: `Provider {{ $labels.provider }} rejects a key of ${name}`,
    description: `In the last ${EVENT_WINDOW.keyAuth}, provider {{ $labels.provider }} answered 401/403 to a key of ${where}, or the gateway had no usable key left for it: a key was revoked, rotated out or never valid. A rejected key is set aside until its file changes; the next key source, then the fallback chain, is used meanwhile.`,
  });

  add('LLMRouteModelDrift', 'warning', {
    expr: `sum by (${BY}, provider, pinned, answered) (${recent(sel(M.drift), EVENT_WINDOW.drift)}) > 0`,
    summary: `Provider {{ $labels.provider }} answers {{ $labels.pinned }} requests with {{ $labels.answered }} (${name})`,
    description: `In the last ${EVENT_WINDOW.drift}, provider {{ $labels.provider }} answered requests for the pinned model {{ $labels.pinned }} with {{ $labels.answered }} on ${where}: the provider moved a deployment or alias, and answers may differ from what was tested.`,
  });

  add('LLMRouteStreamStalls', 'warning', {
    expr: `${ratio(attempts('result="stream_stall"'), sentAttempts, `${BY}, provider, model`, '15m')} > ${promNumber(thresholds.streamStallRatio)}`,
    for: '10m',
    summary: `Streams from {{ $labels.provider }}/{{ $labels.model }} stall on ${name}`,
    description: `For 10 minutes, {{ $value | humanizePercentage }} of the attempts at provider {{ $labels.provider }} for model {{ $labels.model }} from ${where} stalled mid-stream (no chunk within the model's idleSeconds; spec.alerts.streamStallRatio: ${promNumber(thresholds.streamStallRatio * 100)}%). Stalls before the first byte fail over; later ones end the client's stream with an error.`,
  });

  add('LLMRouteStreamsTruncated', 'warning', {
    expr: `${ratio(sel(M.streams, 'ending="truncated"'), sel(M.streams, 'ending!="client_gone"'), `${BY}, model`, '15m')} > ${promNumber(thresholds.streamTruncatedRatio)}`,
    for: '10m',
    summary: `Streams of model {{ $labels.model }} on ${name} end without [DONE]`,
    description: `For 10 minutes, {{ $value | humanizePercentage }} of the client streams for model {{ $labels.model }} on ${where} ended truncated, with an error event instead of [DONE] (spec.alerts.streamTruncatedRatio: ${promNumber(thresholds.streamTruncatedRatio * 100)}%): users saw half an answer.`,
  });

  // --- Configuration ------------------------------------------------------------------------------------------

  // A gauge of the last read rather than a count of rejections: the alert lasts exactly as long as the bad config.
  add('LLMRouteConfigReloadFailing', 'warning', {
    expr: `min by (${BY}, pod) (${sel(M.configReloadSuccessful)}) == 0`,
    for: '5m',
    summary: `Gateway pod {{ $labels.pod }} of ${name} rejects its config`,
    description: `Gateway pod {{ $labels.pod }} of ${where} has been rejecting its mounted config (gateway.json) for 5 minutes (llmroute_config_last_reload_successful 0); it keeps serving the config it had, so the latest change to the LLMRoute is not in effect on that pod. The alert clears once the pod reads a valid config.`,
  });

  add('LLMRouteModelPriceUnknown', 'warning', {
    expr: `sum by (${BY}, model) (${recent(sel(M.unknownPrice), EVENT_WINDOW.unknownPrice)}) > 0`,
    summary: `Model {{ $labels.model }} has no price on ${name}: its cost is not counted`,
    description: `In the last ${EVENT_WINDOW.unknownPrice}, ${where} answered with model {{ $labels.model }}, which has no known price: its spend is missing from llmroute_cost_usd_total and from every budget. Add it to spec.prices.`,
  });

  // --- Redis and budgets --------------------------------------------------------------------------------------

  const env = route.spec.environments.find((e) => e.name === environment);
  if (env?.gateway.redis) {
    add('LLMRouteBudgetStoreDegraded', 'warning', {
      expr: `max by (${BY}) (${sel(M.budgetStoreDegraded)}) > 0`,
      for: '5m',
      summary: `${name} cannot reach its budget Redis`,
      description: `A gateway pod of ${where} has not reached its Redis for 5 minutes: budgets are enforced on each replica's local share of the limits, so requests may be refused early, and spend recorded meanwhile is reconciled when Redis is back.`,
    });
    if (hasRateLimits(route)) {
      add('LLMRouteRateLimitStoreDegraded', 'warning', {
        expr: `max by (${BY}) (${sel(M.rateLimitStoreDegraded)}) > 0`,
        for: '5m',
        summary: `${name} cannot reach its rate-limit Redis`,
        description: `A gateway pod of ${where} has not reached its Redis for 5 minutes: rate limits are enforced on each replica's local share (limit ÷ replicas), so the replicas stay under a limit together only while traffic is spread evenly, a busy replica queues or refuses early, and a provider's retry-after holds back only the replica that saw it. What the shares took is handed over to Redis when it is back.`,
      });
    }
  }

  const budgets = budgetsOf(route, environment);
  for (const fraction of alertAtFractions(route, environment)) {
    add('LLMRouteBudgetThresholdReached', 'warning', {
      expr: `sum by (${BY}, scope, window, fraction) (${recent(sel(M.budgetThreshold, `fraction=${quote(fractionLabel(fraction))}`), EVENT_WINDOW.budgetThreshold)}) > 0`,
      // The same value the expression gives; it also keeps the rules of different fractions apart.
      labels: { fraction: fractionLabel(fraction) },
      summary: `${name}: the {{ $labels.window }} budget of {{ $labels.scope }} is ${promNumber(fraction * 100)}% spent`,
      description: `Spend against the {{ $labels.window }} budget of {{ $labels.scope }} on ${where} crossed ${promNumber(fraction * 100)}% of its limit (alertAt ${promNumber(fraction)}) within the last ${EVENT_WINDOW.budgetThreshold}.`,
    });
  }

  for (const { scope, client, budget } of budgets) {
    for (const window of ['daily', 'monthly'] as const) {
      const limit = budget[window];
      if (limit === undefined) continue;
      // Budgets settle what providers charged, wasted attempts included.
      const spend = `{${[`__name__=~${quote(`${M.cost}|${M.wastedCost}`)}`, ...base, ...(client ? [`client=${quote(client)}`] : [])].join(', ')}}`;
      // What is left, as the ledger holds it. With Redis every pod reports the same; during an outage each its own
      // share's estimate: the smallest is the one that refuses first.
      const left = `min by (${BY}) (${sel(M.budgetRemaining, `scope=${quote(scope)}`, `window=${quote(window)}`)})`;
      add('LLMRouteBudgetBurnRateHigh', 'warning', {
        expr: `sum by (${BY}) (rate(${spend}[${SPEND_RATE_WINDOW[window]}])) * ${SECONDS_LEFT[window]} > ${left}`,
        for: '15m',
        labels: { scope, window },
        summary: `${name}: the ${window} budget of ${scope} will run out before it resets`,
        description: `At the spend rate of the last ${SPEND_RATE_WINDOW[window]}, ${where} would spend \${{ printf "%.2f" $value }} more before the ${window} window resets (UTC), more than the ${window} budget of ${scope} ($${promNumber(limit)}) has left after what is spent and reserved (llmroute_budget_remaining_usd): the budget runs out before the window ends.`,
      });
    }
  }

  if (budgets.some((b) => b.budget.onExhausted === 'degrade')) {
    add('LLMRouteBudgetExhausted', 'warning', {
      expr: `sum by (${BY}, model, to) (${recent(sel(M.budgetDegraded), EVENT_WINDOW.budgetDegraded)}) > 0`,
      labels: { signal: 'degraded_requests' },
      summary: `${name}: a budget is spent; model {{ $labels.model }} is served by {{ $labels.to }}`,
      description: `A budget of ${where} with onExhausted: degrade is spent: in the last ${EVENT_WINDOW.budgetDegraded}, requests for model {{ $labels.model }} were served by the cheaper {{ $labels.to }} instead, until the budget resets.`,
    });
  }
  if (budgets.some((b) => b.budget.onExhausted === 'reject')) {
    add('LLMRouteBudgetExhausted', 'critical', {
      expr: `sum by (${BY}, scope, window) (${recent(sel(M.budgetRejected), EVENT_WINDOW.budgetDegraded)}) > 0`,
      labels: { signal: 'rejected' },
      summary: `${name}: the {{ $labels.window }} budget of {{ $labels.scope }} is spent; requests are refused`,
      description: `A budget with onExhausted: reject on ${where} is spent: in the last ${EVENT_WINDOW.budgetDegraded} the gateway answered 429 budget_exceeded to requests against the {{ $labels.window }} budget of {{ $labels.scope }}, until the window resets (UTC).`,
    });
  }
  // Reservations usually stop spend just short of a limit, so an alertAt of 1 is rarely crossed; when it is, say so.
  if (budgets.some((b) => b.budget.alertAt.includes(1))) {
    add('LLMRouteBudgetExhausted', 'critical', {
      expr: `sum by (${BY}, scope, window) (${recent(sel(M.budgetThreshold, `fraction="${fractionLabel(1)}"`), EVENT_WINDOW.budgetThreshold)}) > 0`,
      labels: { signal: 'limit_reached' },
      summary: `${name}: the {{ $labels.window }} budget of {{ $labels.scope }} is spent`,
      description: `Spend against the {{ $labels.window }} budget of {{ $labels.scope }} on ${where} reached its limit within the last ${EVENT_WINDOW.budgetThreshold}: with onExhausted: reject the gateway answers 429 budget_exceeded until the window resets (UTC). Only budgets whose alertAt includes 1 report this.`,
    });
  }

  // --- Rollouts (the controller's metrics) --------------------------------------------------------------------

  if (rolloutFlags(route, environment).length) {
    // The gauge's own `namespace` label becomes `exported_namespace` when the scrape adds the controller's
    // namespace (honor_labels false, the ServiceMonitor default); match both ways.
    const own = [`route=${quote(route.metadata.name)}`, `environment=${quote(environment)}`];
    const percent = (wrap: (selector: string) => string) =>
      namespace
        ? `${wrap(`${M.rolloutPercent}{${[...own, `exported_namespace=${quote(namespace)}`].join(', ')}}`)} or ${wrap(`${M.rolloutPercent}{${[...own, `namespace=${quote(namespace)}`, 'exported_namespace=""'].join(', ')}}`)}`
        : wrap(`${M.rolloutPercent}{${own.join(', ')}}`);
    const by = 'route, environment, flag';
    add('LLMRouteRolloutAborted', 'warning', {
      expr: `max by (${by}) (${percent((s) => s)}) == 0 and max by (${by}) (${percent((s) => `max_over_time(${s}[${EVENT_WINDOW.rolloutAborted}])`)}) > 0`,
      labels: namespace ? { namespace } : {},
      summary: `Rollout of flag {{ $labels.flag }} on ${name} was rolled back`,
      description: `The controller set flag {{ $labels.flag }} of route ${route.metadata.name} to 0% in environment ${environment} after it had been rolling out (within the last ${EVENT_WINDOW.rolloutAborted}): its analysis failed against the ${BASELINE_VARIANT}, or someone annotated abort. It stays at 0% until resume or a change to the flag.`,
    });
  }

  return [{ name: `llmroute.${route.metadata.name}.${environment}`, rules }];
}
