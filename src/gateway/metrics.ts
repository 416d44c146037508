/**
 * The gateway's metrics (docs/metrics.md is the contract). Labels are bounded: route and environment are fixed per
 * gateway (default labels), models, providers, clients, flags and error classes come from the config. Never a user,
 * a prompt or a key; keys appear only as fingerprints.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { GatewayConfig } from '../api/gateway-config.js';
import { METRIC } from '../api/metric-names.js';
import type { BudgetScope, ScopeId, Spent } from './budget/ledger.js';
import { WINDOWS, type BudgetWindow } from './budget/windows.js';

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120];
const TOKEN_BUCKETS = [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];
/**
 * How long a scrape waits for the budget ledger. Redis fails a command after a second (redis-client.ts); a scrape
 * must still answer well within Prometheus' scrape timeout (10 s by default), with the last values if need be.
 */
const BUDGET_READ_MS = 1500;

/** One window of one budget as the ledger in use holds it: what the budget gauges show. */
export interface BudgetReading {
  scope: ScopeId;
  window: BudgetWindow;
  spentUSD: number;
  reservedUSD: number;
  /** Undefined when the budget sets no limit for this window: spend is tracked all the same. */
  limitUSD: number | undefined;
}

/** A scope's spend, from the ledger in use (gateway.ts picks the reader). */
export type SpentReader = (scope: BudgetScope, now: number) => Promise<Spent>;

/** Every budget of the environment: its own and each client's, named as the `scope` label names them. */
function budgetScopes(config: GatewayConfig): BudgetScope[] {
  return [
    ...(config.budget ? [{ id: 'environment' as const, budget: config.budget }] : []),
    ...config.clients.flatMap((c) => (c.budget ? [{ id: `client:${c.name}` as const, budget: c.budget }] : [])),
  ];
}

/**
 * Every window of every budget of `config`, read through `read`. Ledgers count reservations per day; a reservation
 * is held in its month too, so the month shows the day's (one made before midnight UTC and still open, at most the
 * longest request ago, is missing from both).
 */
export async function readBudgets(config: GatewayConfig, read: SpentReader, now: number): Promise<BudgetReading[]> {
  const scopes = budgetScopes(config);
  const spent = await Promise.all(scopes.map((scope) => read(scope, now)));
  return scopes.flatMap((scope, i) => {
    const { dailyUSD, monthlyUSD, reservedUSD } = spent[i] as Spent;
    return WINDOWS.map((window) => ({ scope: scope.id, window, spentUSD: window === 'daily' ? dailyUSD : monthlyUSD, reservedUSD, limitUSD: scope.budget[window] }));
  });
}

/** `promise`, or a rejection once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

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
  readonly configReloadSuccessful = new Gauge({ name: 'llmroute_config_last_reload_successful', help: '1 when the last read of the config file gave a valid config, 0 while it gives a rejected one (the previous config keeps serving).', registers: [this.registry] });
  readonly configReloadTimestamp = new Gauge({ name: 'llmroute_config_last_reload_success_timestamp_seconds', help: 'When the config serving now was applied, in Unix seconds.', registers: [this.registry] });
  readonly keyReloads = new Counter({ name: 'llmroute_key_reloads_total', help: 'Key files that changed, by provider and result.', labelNames: ['provider', 'result'], registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'llmroute_ratelimit_queue_depth', help: 'Requests waiting in a provider\'s admission queue.', labelNames: ['provider'], registers: [this.registry] });
  readonly queueWait = new Histogram({ name: 'llmroute_ratelimit_wait_seconds', help: 'Time spent waiting for admission, by outcome.', labelNames: ['provider', 'outcome'], buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10], registers: [this.registry] });
  readonly rateLimitStoreDegraded = new Gauge({ name: 'llmroute_ratelimit_store_degraded', help: '1 while Redis is unreachable and rate limits are enforced on a local share.', registers: [this.registry] });
  readonly rateLimitHolds = new Counter({ name: 'llmroute_ratelimit_holds_total', help: 'Times a provider\'s rate-limit headers held its limiter back, by unit (requests, tokens) and reason (remaining, slower_refill, retry_after).', labelNames: ['provider', 'unit', 'reason'], registers: [this.registry] });
  readonly ready = new Gauge({ name: 'llmroute_gateway_ready', help: '1 when the gateway has a valid config and every required key.', registers: [this.registry] });
  // The three budget gauges are read from the ledger when scraped, in one read shared by the three (see collectBudgets).
  readonly budgetSpent = new Gauge({ name: 'llmroute_budget_spent_usd', help: 'Spend in the current period of each budget window, as the ledger in use holds it.', labelNames: ['scope', 'window'], registers: [this.registry], collect: () => this.collectBudgets() });
  readonly budgetReserved = new Gauge({ name: 'llmroute_budget_reserved_usd', help: 'Held by reservations of requests in flight.', labelNames: ['scope', 'window'], registers: [this.registry], collect: () => this.collectBudgets() });
  readonly budgetRemaining = new Gauge({ name: 'llmroute_budget_remaining_usd', help: 'Limit minus spent and reserved (not below 0), for windows with a limit.', labelNames: ['scope', 'window'], registers: [this.registry], collect: () => this.collectBudgets() });
  private budgets: { read: () => Promise<BudgetReading[]>; onError: (error: unknown) => void } | undefined;
  private budgetCollection: Promise<void> | undefined;

  /** `namespace` is left to the scrape: Prometheus adds the pod's namespace as a target label. */
  constructor(defaultLabels: { route: string; environment: string }) {
    this.registry.setDefaultLabels(defaultLabels);
    collectDefaultMetrics({ register: this.registry, prefix: 'llmroute_gateway_' });
  }

  /** Where the budget gauges come from: `read` is called at scrape time, and its failures go to `onError`. */
  watchBudgets(read: () => Promise<BudgetReading[]>, onError: (error: unknown) => void): void {
    this.budgets = { read, onError };
  }

  /** prom-client collects the three gauges at once: the first starts the read, the other two wait for the same. */
  private collectBudgets(): Promise<void> {
    this.budgetCollection ??= this.refreshBudgets().finally(() => {
      this.budgetCollection = undefined;
    });
    return this.budgetCollection;
  }

  private async refreshBudgets(): Promise<void> {
    if (!this.budgets) return;
    let readings: BudgetReading[];
    try {
      readings = await within(this.budgets.read(), BUDGET_READ_MS);
    } catch (error) {
      // The last values stay: a slow or unreachable Redis must neither blank the gauges nor fail the scrape.
      this.budgets.onError(error);
      return;
    }
    // Reset first: a budget removed from the config loses its series.
    for (const gauge of [this.budgetSpent, this.budgetReserved, this.budgetRemaining]) gauge.reset();
    for (const { scope, window, spentUSD, reservedUSD, limitUSD } of readings) {
      this.budgetSpent.set({ scope, window }, spentUSD);
      this.budgetReserved.set({ scope, window }, reservedUSD);
      if (limitUSD !== undefined) this.budgetRemaining.set({ scope, window }, Math.max(0, limitUSD - spentUSD - reservedUSD));
    }
  }
}
