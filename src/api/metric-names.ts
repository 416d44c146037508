/**
 * Names and labels of the gateway's metrics that other parts of llmroute read: the controller's rollout analysis and
 * budget status, and the alert rules. The full contract, with every metric, is docs/metrics.md; these are the names
 * that code depends on, so they live in code. OpenTelemetry GenAI semantic conventions inspired the shapes; the
 * names follow Prometheus conventions (base units, `_total` counters).
 */
export const METRIC = {
  /** Counter of client requests by final outcome. Labels: route, environment, model, client, variant, outcome. */
  requests: 'llmroute_requests_total',
  /** Histogram of whole-request duration in seconds. Labels: route, environment, model, variant. */
  requestDuration: 'llmroute_request_duration_seconds',
  /** Counter of USD spent on answered requests. Labels: route, environment, model, provider, client, variant. */
  cost: 'llmroute_cost_usd_total',
} as const;

/** The `variant` label: a flag's name for requests in the flag, `baseline` for the rest. */
export const BASELINE_VARIANT = 'baseline';

/** `outcome` label values that count as errors in rollout analysis and error-ratio alerts. */
export const ERROR_OUTCOMES = ['error', 'timeout', 'truncated'] as const;
/** Every `outcome` value: `success`, a client-side `rejected` (auth, budget, bad request), or one of the errors. */
export const OUTCOMES = ['success', 'rejected', ...ERROR_OUTCOMES] as const;
