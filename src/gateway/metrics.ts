/**
 * The gateway's metrics (docs/metrics.md is the contract). Labels are bounded: route and environment are fixed per
 * gateway (default labels), models, providers, clients, flags and error classes come from the config. Never a user,
 * a prompt or a key; keys appear only as fingerprints.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { METRIC } from '../api/metric-names.js';

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120];
const TOKEN_BUCKETS = [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: METRIC.requests, help: 'Client requests by final outcome.', labelNames: ['model', 'client', 'variant', 'outcome'], registers: [this.registry] });
  readonly refused = new Counter({ name: 'llmroute_requests_refused_total', help: 'Requests answered with an error before any provider was asked, by reason (unauthenticated, unknown_model, over_max_input_tokens, ...).', labelNames: ['reason'], registers: [this.registry] });
  readonly requestDuration = new Histogram({ name: METRIC.requestDuration, help: 'Whole-request duration, every attempt included.', labelNames: ['model', 'variant'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly timeToFirstToken = new Histogram({ name: 'llmroute_time_to_first_token_seconds', help: 'Time from the request to the first content sent to the client.', labelNames: ['model', 'provider'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly attempts = new Counter({ name: 'llmroute_upstream_attempts_total', help: 'Upstream attempts by result: success, an error class, or a skip reason.', labelNames: ['provider', 'model', 'result'], registers: [this.registry] });
  readonly attemptDuration = new Histogram({ name: 'llmroute_upstream_attempt_duration_seconds', help: 'Duration of one upstream attempt.', labelNames: ['provider', 'model', 'result'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly fallbacks = new Counter({ name: 'llmroute_fallbacks_total', help: 'Requests answered by a fallback step, by depth (1 = the first fallback).', labelNames: ['model', 'depth'], registers: [this.registry] });
  readonly tokens = new Counter({ name: 'llmroute_tokens_total', help: 'Tokens by direction (input, output).', labelNames: ['model', 'provider', 'client', 'direction'], registers: [this.registry] });
  readonly promptTokens = new Histogram({ name: 'llmroute_prompt_tokens', help: 'Input tokens per request: exposes prompt stuffing.', labelNames: ['model'], buckets: TOKEN_BUCKETS, registers: [this.registry] });
  readonly cost = new Counter({ name: METRIC.cost, help: 'USD spent on answered requests.', labelNames: ['model', 'provider', 'client', 'variant'], registers: [this.registry] });
  readonly wastedCost = new Counter({ name: 'llmroute_wasted_cost_usd_total', help: 'USD providers charged for attempts that did not produce the answer (cut, stalled, abandoned).', labelNames: ['model', 'provider', 'client'], registers: [this.registry] });
  readonly unknownPrice = new Counter({ name: 'llmroute_unknown_price_total', help: 'Answers whose model has no known price: their cost is not counted. Add it to spec.prices.', labelNames: ['model'], registers: [this.registry] });
  readonly coalesced = new Counter({ name: 'llmroute_coalesced_requests_total', help: 'Requests answered by sharing an identical request already in flight.', labelNames: ['model'], registers: [this.registry] });
  readonly degraded = new Counter({ name: 'llmroute_budget_degraded_requests_total', help: 'Requests served by the cheaper model because a budget with onExhausted: degrade was spent.', labelNames: ['model', 'to'], registers: [this.registry] });
  readonly budgetRejected = new Counter({ name: 'llmroute_budget_rejected_requests_total', help: 'Requests answered 429 budget_exceeded because a budget with onExhausted: reject is spent.', labelNames: ['scope', 'window'], registers: [this.registry] });
  readonly budgetThreshold = new Counter({ name: 'llmroute_budget_threshold_crossed_total', help: 'Budget alertAt thresholds crossed, once per window and period.', labelNames: ['scope', 'window', 'fraction'], registers: [this.registry] });
  readonly budgetStoreDegraded = new Gauge({ name: 'llmroute_budget_store_degraded', help: '1 while Redis is unreachable and budgets are enforced on a local share.', registers: [this.registry] });
  readonly breakerState = new Gauge({ name: 'llmroute_circuit_breaker_state', help: 'Circuit breaker state: 0 closed, 1 open, 2 half-open.', labelNames: ['provider', 'model'], registers: [this.registry] });
  readonly keyFailures = new Counter({ name: 'llmroute_key_failures_total', help: 'Keys a provider rejected, by key fingerprint.', labelNames: ['provider', 'fingerprint'], registers: [this.registry] });
  readonly drift = new Counter({ name: 'llmroute_model_drift_total', help: 'Answers from a model other than the pinned one.', labelNames: ['provider', 'pinned', 'answered'], registers: [this.registry] });
  readonly streams = new Counter({ name: 'llmroute_streams_total', help: 'Client streams by ending: complete, continued, truncated (ended with an error event), client_gone.', labelNames: ['model', 'ending'], registers: [this.registry] });
  readonly malformedEvents = new Counter({ name: 'llmroute_malformed_events_total', help: 'Provider stream events that could not be read and were dropped.', labelNames: ['provider'], registers: [this.registry] });
  readonly configReloads = new Counter({ name: 'llmroute_config_reloads_total', help: 'Config reloads by result; a failed one leaves the previous config serving.', labelNames: ['result'], registers: [this.registry] });
  readonly keyReloads = new Counter({ name: 'llmroute_key_reloads_total', help: 'Key files that changed, by provider and result.', labelNames: ['provider', 'result'], registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'llmroute_ratelimit_queue_depth', help: 'Requests waiting in a provider\'s admission queue.', labelNames: ['provider'], registers: [this.registry] });
  readonly queueWait = new Histogram({ name: 'llmroute_ratelimit_wait_seconds', help: 'Time spent waiting for admission, by outcome.', labelNames: ['provider', 'outcome'], buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10], registers: [this.registry] });
  readonly ready = new Gauge({ name: 'llmroute_gateway_ready', help: '1 when the gateway has a valid config and every required key.', registers: [this.registry] });

  /** `namespace` is left to the scrape: Prometheus adds the pod's namespace as a target label. */
  constructor(defaultLabels: { route: string; environment: string }) {
    this.registry.setDefaultLabels(defaultLabels);
    collectDefaultMetrics({ register: this.registry, prefix: 'llmroute_gateway_' });
  }
}
