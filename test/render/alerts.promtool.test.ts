/**
 * Every rendered alert, proven with promtool: `promtool check rules` on the rendered groups, then `promtool test rules`
 * with input series that must fire the alert (with its exact labels and annotations, $value included) and series
 * that must not. Series look like what Prometheus stores for a gateway scraped through the rendered ServiceMonitor:
 * `job="<route>-<environment>"`, `namespace`, `pod`, plus the gateway's default labels `route` and `environment`.
 *
 * Counters with labels appear at their first increment, so rare events are written as series that start at 1
 * (`_x5 1x30`): that is what a real scrape sees, and what increase() alone would miss.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadText } from '../../src/api/files.js';
import type { LLMRoute } from '../../src/api/schema.js';
import { ALERT_NAMES, alertRuleGroups, type AlertName, type AlertRule, type RuleGroup } from '../../src/render/alerts.js';
import { gatewayDashboard } from '../../src/render/dashboards.js';
import { checkRules, findPromtool, testRules } from '../support/promtool.js';

const ROUTE = `
apiVersion: llmroute.dev/v1alpha1
kind: LLMRoute
metadata: { name: support-bot, namespace: ai }
spec:
  providers:
    - { name: openai, type: openai, limits: { requestsPerMinute: 500 } }
    - { name: anthropic, type: anthropic }
  models:
    - name: chat
      pin: gpt-4o-2024-08-06
      fallback: [{ provider: openai }, { provider: anthropic, model: claude-sonnet-4-20250514 }]
    - name: chat-mini
      pin: gpt-4o-mini-2024-07-18
      fallback: [{ provider: openai }]
  clients:
    - name: web
      tokenSecretRef: { name: clients, key: web }
      budget: { daily: 20, onExhausted: degrade, degradeTo: chat-mini }
    - name: batch
      tokenSecretRef: { name: clients, key: batch }
  flags:
    - name: chat-nov-snapshot
      set: { models: { chat: { pin: gpt-4o-2024-11-20 } } }
      rollout: { steps: [5, 25, 50, 100], interval: 15m }
  alerts:
    errorRatio: 0.01
    p99LatencySeconds: 20
    p99TimeToFirstTokenSeconds: 5
    fallbackRatio: 0.2
    rateLimitedRatio: 0.25
    streamStallRatio: 0.05
    streamTruncatedRatio: 0.02
  environments:
    - name: production
      keys:
        openai: [{ secretRef: { name: openai, key: apiKey } }]
        anthropic: [{ secretRef: { name: anthropic, key: apiKey } }]
      budget: { daily: 100, monthly: 1500, alertAt: [0.5, 0.8, 1] }
      gateway: { replicas: 3, redis: { urlSecretRef: { name: redis, key: url } } }
`;

const ENV = 'production';
const NS = 'ai';
const JOB = 'support-bot-production';
const PIN = 'gpt-4o-2024-08-06';

function loadRoute(): LLMRoute {
  const { routes, findings } = loadText(ROUTE, 'route.yaml');
  const errors = findings.filter((f) => f.severity === 'error');
  if (errors.length || !routes[0]) throw new Error(`the test route is invalid: ${JSON.stringify(errors)}`);
  return routes[0].route;
}

interface Series {
  series: string;
  values: string;
}

interface Case {
  alert: AlertName;
  title: string;
  input: Series[];
  /** promtool eval_time, from the start of the series. */
  at: string;
  /** How often rules are evaluated; hours-long cases use 5m, or promtool spends seconds on them. Default 1m. */
  every?: '5m';
  /** Every alert expected at `at`, with all its labels except alertname, llmroute_route and llmroute_environment; `value` is what `$value` renders as. Empty: must stay silent. */
  fires: { labels: Record<string, string>; value?: string }[];
}

const selector = (metric: string, labels: Record<string, string>) => `${metric}{${Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}}`;
/** A gateway series as Prometheus stores it from the rendered ServiceMonitor. */
const gw = (metric: string, labels: Record<string, string>, values: string, pod = 'gw-1'): Series => ({
  series: selector(metric, { job: JOB, namespace: NS, pod, instance: `${pod}:9090`, route: 'support-bot', environment: ENV, ...labels }),
  values,
});
/** The labels of a gateway alert that aggregates by namespace and job. */
const at = (severity: 'critical' | 'warning', labels: Record<string, string> = {}) => ({ severity, namespace: NS, job: JOB, ...labels });
const req = (outcome: string, values: string) => gw('llmroute_requests_total', { model: 'chat', client: 'web', variant: 'baseline', outcome }, values);
const attempt = (result: string, values: string, provider = 'openai', model = PIN) => gw('llmroute_upstream_attempts_total', { provider, model, result }, values);
const bucket = (metric: string, labels: Record<string, string>, le: string, values: string) => gw(`${metric}_bucket`, { ...labels, le }, values);
const threshold = (scope: string, window: string, fraction: string, values: string) => gw('llmroute_budget_threshold_crossed_total', { scope, window, fraction }, values);
const left = (scope: string, window: string, values: string, pod = 'gw-1') => gw('llmroute_budget_remaining_usd', { scope, window }, values, pod);
const reloadOk = (values: string, pod: string) => gw('llmroute_config_last_reload_successful', {}, values, pod);
const rollout = (labels: Record<string, string>, values: string): Series => ({
  series: selector('llmroute_controller_rollout_percent', { job: 'llmroute-controller', pod: 'llmroute-controller-0', route: 'support-bot', environment: ENV, flag: 'chat-nov-snapshot', ...labels }),
  values,
});
/** The ServiceMonitor default (honor_labels false): the gauge's namespace becomes exported_namespace. */
const exported = { namespace: 'llmroute-system', exported_namespace: NS };

const CASES: Case[] = [
  // --- LLMRouteGatewayDown
  { alert: 'LLMRouteGatewayDown', title: 'every pod stops answering scrapes', input: [{ series: `up{job="${JOB}", namespace="${NS}", pod="gw-1"}`, values: '1x5 0x20' }, { series: `up{job="${JOB}", namespace="${NS}", pod="gw-2"}`, values: '1x5 0x20' }], at: '15m', fires: [{ labels: at('critical') }] },
  { alert: 'LLMRouteGatewayDown', title: 'Prometheus has no gateway target at all', input: [{ series: `up{job="other-production", namespace="${NS}", pod="x"}`, values: '1x20' }], at: '10m', fires: [{ labels: at('critical') }] },
  { alert: 'LLMRouteGatewayDown', title: 'one pod of two is down', input: [{ series: `up{job="${JOB}", namespace="${NS}", pod="gw-1"}`, values: '1x20' }, { series: `up{job="${JOB}", namespace="${NS}", pod="gw-2"}`, values: '1x5 0x15' }], at: '15m', fires: [] },
  { alert: 'LLMRouteGatewayDown', title: 'down for less than 5 minutes', input: [{ series: `up{job="${JOB}", namespace="${NS}", pod="gw-1"}`, values: '1x5 0x3 1x10' }], at: '10m', fires: [] },

  // --- LLMRouteGatewayNotReady
  { alert: 'LLMRouteGatewayNotReady', title: 'a pod reports not ready for 5 minutes', input: [gw('llmroute_gateway_ready', {}, '1x2 0x15', 'gw-1'), gw('llmroute_gateway_ready', {}, '1x17', 'gw-2')], at: '10m', fires: [{ labels: at('critical', { pod: 'gw-1' }) }] },
  { alert: 'LLMRouteGatewayNotReady', title: 'a pod drains for shutdown and goes away', input: [gw('llmroute_gateway_ready', {}, '1 1 0 0 stale', 'gw-1'), gw('llmroute_gateway_ready', {}, '1x17', 'gw-2')], at: '10m', fires: [] },

  // --- LLMRouteErrorBudgetBurn (errorRatio 0.01: 14.4× is 14.4%, 6× is 6%)
  {
    alert: 'LLMRouteErrorBudgetBurn',
    title: 'half the requests fail (errors and timeouts): both windows page',
    input: [req('success', '0+50x90'), req('error', '0+30x90'), req('timeout', '0+20x90')],
    at: '60m',
    fires: [
      { labels: at('critical', { long_window: '1h', short_window: '5m' }), value: '50%' },
      { labels: at('critical', { long_window: '6h', short_window: '30m' }), value: '50%' },
    ],
  },
  { alert: 'LLMRouteErrorBudgetBurn', title: '10% errors for hours: only the slow burn pages', every: '5m', input: [req('success', '0+90x480'), req('error', '0+10x480')], at: '420m', fires: [{ labels: at('critical', { long_window: '6h', short_window: '30m' }), value: '10%' }] },
  { alert: 'LLMRouteErrorBudgetBurn', title: 'a 5-minute error spike does not page', input: [req('success', '0+100x120'), req('error', '0x115 100 200 300 400 500')], at: '120m', fires: [] },
  { alert: 'LLMRouteErrorBudgetBurn', title: 'rejected requests and clients that went away are not errors', input: [req('success', '0+50x90'), req('rejected', '0+50x90'), req('client_gone', '0+50x90')], at: '60m', fires: [] },
  { alert: 'LLMRouteErrorBudgetBurn', title: '0.5% errors stay within the budget', every: '5m', input: [req('success', '0+199x420'), req('error', '0+1x420')], at: '400m', fires: [] },

  // --- LLMRouteLatencyHigh (20s)
  {
    alert: 'LLMRouteLatencyHigh',
    title: 'every request takes 15-30s',
    input: ['8', '15'].map((le) => bucket('llmroute_request_duration_seconds', { model: 'chat', variant: 'baseline' }, le, '0x30')).concat(['30', '+Inf'].map((le) => bucket('llmroute_request_duration_seconds', { model: 'chat', variant: 'baseline' }, le, '0+10x30'))),
    at: '20m',
    fires: [{ labels: at('warning', { model: 'chat' }), value: '29.85s' }],
  },
  { alert: 'LLMRouteLatencyHigh', title: 'every request takes 8-15s', input: [bucket('llmroute_request_duration_seconds', { model: 'chat', variant: 'baseline' }, '8', '0x30'), ...['15', '30', '+Inf'].map((le) => bucket('llmroute_request_duration_seconds', { model: 'chat', variant: 'baseline' }, le, '0+10x30'))], at: '20m', fires: [] },
  { alert: 'LLMRouteLatencyHigh', title: 'no traffic', input: ['8', '15', '30', '+Inf'].map((le) => bucket('llmroute_request_duration_seconds', { model: 'chat', variant: 'baseline' }, le, '7x30')), at: '20m', fires: [] },

  // --- LLMRouteTimeToFirstTokenHigh (5s)
  {
    alert: 'LLMRouteTimeToFirstTokenHigh',
    title: 'first tokens take 4-8s',
    input: [...['2', '4'].map((le) => bucket('llmroute_time_to_first_token_seconds', { model: 'chat', provider: 'openai' }, le, '0x30')), ...['8', '+Inf'].map((le) => bucket('llmroute_time_to_first_token_seconds', { model: 'chat', provider: 'openai' }, le, '0+10x30'))],
    at: '20m',
    fires: [{ labels: at('warning', { model: 'chat', provider: 'openai' }), value: '7.96s' }],
  },
  { alert: 'LLMRouteTimeToFirstTokenHigh', title: 'first tokens take 2-4s', input: [bucket('llmroute_time_to_first_token_seconds', { model: 'chat', provider: 'openai' }, '2', '0x30'), ...['4', '8', '+Inf'].map((le) => bucket('llmroute_time_to_first_token_seconds', { model: 'chat', provider: 'openai' }, le, '0+10x30'))], at: '20m', fires: [] },

  // --- LLMRouteProviderQuotaExhausted
  { alert: 'LLMRouteProviderQuotaExhausted', title: 'one quota failure, then the provider cools down with no traffic', input: [attempt('quota_exhausted', '_x5 1x30')], at: '10m', fires: [{ labels: at('critical', { provider: 'openai', model: PIN }) }] },
  { alert: 'LLMRouteProviderQuotaExhausted', title: 'requests keep skipping the cooling provider', input: [attempt('quota_exhausted', '1x60'), attempt('skipped_cooldown', '0+5x60')], at: '40m', fires: [{ labels: at('critical', { provider: 'openai', model: PIN }) }] },
  { alert: 'LLMRouteProviderQuotaExhausted', title: 'quota failures long ago, the provider answers again', input: [attempt('quota_exhausted', '1x90'), attempt('success', '0+10x90')], at: '60m', fires: [] },

  // --- LLMRouteProviderRateLimited (25%)
  { alert: 'LLMRouteProviderRateLimited', title: '30% of attempts rate limited (skips are not attempts)', input: [attempt('rate_limited', '0+3x40'), attempt('success', '0+7x40'), attempt('skipped_limiter', '0+100x40')], at: '35m', fires: [{ labels: at('warning', { provider: 'openai' }), value: '30%' }] },
  { alert: 'LLMRouteProviderRateLimited', title: '20% of attempts rate limited', input: [attempt('rate_limited', '0+2x40'), attempt('success', '0+8x40')], at: '35m', fires: [] },

  // --- LLMRouteCircuitOpen
  { alert: 'LLMRouteCircuitOpen', title: 'the breaker flaps between open and half-open', input: [gw('llmroute_circuit_breaker_state', { provider: 'openai', model: PIN }, '0x5 1 2 1 2 1 2 1 2 1 2 1 2 1 2')], at: '16m', fires: [{ labels: at('warning', { provider: 'openai', model: PIN }) }] },
  { alert: 'LLMRouteCircuitOpen', title: 'the breaker opens, probes and closes', input: [gw('llmroute_circuit_breaker_state', { provider: 'openai', model: PIN }, '0x5 1 2 0x15')], at: '16m', fires: [] },

  // --- LLMRouteFallbackRateHigh (20%)
  { alert: 'LLMRouteFallbackRateHigh', title: '30% of answers come from a fallback', input: [gw('llmroute_fallbacks_total', { model: 'chat', depth: '1' }, '0+3x40'), req('success', '0+10x40')], at: '35m', fires: [{ labels: at('warning', { model: 'chat' }), value: '30%' }] },
  { alert: 'LLMRouteFallbackRateHigh', title: '10% of answers come from a fallback', input: [gw('llmroute_fallbacks_total', { model: 'chat', depth: '1' }, '0+1x40'), req('success', '0+10x40')], at: '35m', fires: [] },

  // --- LLMRouteKeyAuthFailing
  { alert: 'LLMRouteKeyAuthFailing', title: 'a key is rejected once and set aside', input: [attempt('auth_failed', '_x5 1x20', 'anthropic', 'claude-sonnet-4-20250514')], at: '10m', fires: [{ labels: at('warning', { provider: 'anthropic' }) }] },
  { alert: 'LLMRouteKeyAuthFailing', title: 'no usable key is left and requests skip the provider', input: [attempt('auth_failed', '1x40', 'anthropic', 'claude-sonnet-4-20250514'), attempt('skipped_no_key', '0+2x40', 'anthropic', 'claude-sonnet-4-20250514')], at: '30m', fires: [{ labels: at('warning', { provider: 'anthropic' }) }] },
  { alert: 'LLMRouteKeyAuthFailing', title: 'a key rejected long ago was rotated', input: [attempt('auth_failed', '1x60', 'anthropic', 'claude-sonnet-4-20250514'), attempt('success', '0+5x60', 'anthropic', 'claude-sonnet-4-20250514')], at: '40m', fires: [] },

  // --- LLMRouteModelDrift
  { alert: 'LLMRouteModelDrift', title: 'the provider answers with another snapshot', input: [gw('llmroute_model_drift_total', { provider: 'openai', pinned: PIN, answered: 'gpt-4o-2024-11-20' }, '_x10 1 2 3 4 5')], at: '15m', fires: [{ labels: at('warning', { provider: 'openai', pinned: PIN, answered: 'gpt-4o-2024-11-20' }) }] },
  { alert: 'LLMRouteModelDrift', title: 'drift more than an hour ago', input: [gw('llmroute_model_drift_total', { provider: 'openai', pinned: PIN, answered: 'gpt-4o-2024-11-20' }, '1x120')], at: '100m', fires: [] },

  // --- LLMRouteStreamStalls (5%)
  { alert: 'LLMRouteStreamStalls', title: '10% of attempts stall', input: [attempt('stream_stall', '0+1x40'), attempt('success', '0+9x40')], at: '35m', fires: [{ labels: at('warning', { provider: 'openai', model: PIN }), value: '10%' }] },
  { alert: 'LLMRouteStreamStalls', title: '1% of attempts stall', input: [attempt('stream_stall', '0+1x40'), attempt('success', '0+99x40')], at: '35m', fires: [] },

  // --- LLMRouteStreamsTruncated (2%)
  {
    alert: 'LLMRouteStreamsTruncated',
    title: '5% of streams end truncated (clients that left do not count)',
    input: [gw('llmroute_streams_total', { model: 'chat', ending: 'truncated' }, '0+1x40'), gw('llmroute_streams_total', { model: 'chat', ending: 'complete' }, '0+19x40'), gw('llmroute_streams_total', { model: 'chat', ending: 'client_gone' }, '0+100x40')],
    at: '35m',
    fires: [{ labels: at('warning', { model: 'chat' }), value: '5%' }],
  },
  { alert: 'LLMRouteStreamsTruncated', title: '1% of streams end truncated', input: [gw('llmroute_streams_total', { model: 'chat', ending: 'truncated' }, '0+1x40'), gw('llmroute_streams_total', { model: 'chat', ending: 'continued' }, '0+99x40')], at: '35m', fires: [] },

  // --- LLMRouteConfigReloadFailing
  { alert: 'LLMRouteConfigReloadFailing', title: 'a pod rejects a new config', input: [reloadOk('1x3 0x20', 'gw-1'), reloadOk('1x23', 'gw-2')], at: '10m', fires: [{ labels: at('warning', { pod: 'gw-1' }) }] },
  { alert: 'LLMRouteConfigReloadFailing', title: 'still rejected an hour later: still firing', input: [reloadOk('1x3 0x80', 'gw-1')], at: '75m', fires: [{ labels: at('warning', { pod: 'gw-1' }) }] },
  { alert: 'LLMRouteConfigReloadFailing', title: 'a rejected config fixed within two minutes', input: [reloadOk('1x3 0 0 1x20', 'gw-1')], at: '15m', fires: [] },
  { alert: 'LLMRouteConfigReloadFailing', title: 'a config rejected long ago, fixed since', input: [reloadOk('0x10 1x50', 'gw-1')], at: '40m', fires: [] },

  // --- LLMRouteModelPriceUnknown
  { alert: 'LLMRouteModelPriceUnknown', title: 'answers from a model without a price', input: [gw('llmroute_unknown_price_total', { model: 'gpt-4o-2024-11-20' }, '_x5 1 2 3')], at: '10m', fires: [{ labels: at('warning', { model: 'gpt-4o-2024-11-20' }) }] },
  { alert: 'LLMRouteModelPriceUnknown', title: 'an unpriced answer hours ago', input: [gw('llmroute_unknown_price_total', { model: 'gpt-4o-2024-11-20' }, '1x200')], at: '150m', fires: [] },

  // --- LLMRouteBudgetStoreDegraded
  { alert: 'LLMRouteBudgetStoreDegraded', title: 'Redis out of reach for 5 minutes', input: [gw('llmroute_budget_store_degraded', {}, '0x3 1x20')], at: '15m', fires: [{ labels: at('warning') }] },
  { alert: 'LLMRouteBudgetStoreDegraded', title: 'a two-minute Redis blip', input: [gw('llmroute_budget_store_degraded', {}, '0 1 1 0x20')], at: '15m', fires: [] },

  // --- LLMRouteRateLimitStoreDegraded
  { alert: 'LLMRouteRateLimitStoreDegraded', title: 'one pod out of reach of Redis for 5 minutes', input: [gw('llmroute_ratelimit_store_degraded', {}, '0x3 1x20'), gw('llmroute_ratelimit_store_degraded', {}, '0x23', 'gw-2')], at: '15m', fires: [{ labels: at('warning') }] },
  { alert: 'LLMRouteRateLimitStoreDegraded', title: 'a two-minute Redis blip, and only the budget store reporting', input: [gw('llmroute_ratelimit_store_degraded', {}, '0 1 1 0x20'), gw('llmroute_budget_store_degraded', {}, '1x23')], at: '15m', fires: [] },

  // --- LLMRouteBudgetThresholdReached (alertAt 0.5, 0.8 and 1 for the environment, 0.8 for client web)
  {
    alert: 'LLMRouteBudgetThresholdReached',
    title: 'the environment and client web cross 80% (50% was crossed long ago)',
    input: [threshold('environment', 'daily', '0.5', '1x100'), threshold('environment', 'daily', '0.8', '_x80 1x20'), threshold('client:web', 'daily', '0.8', '_x85 1x15')],
    at: '90m',
    fires: [
      { labels: at('warning', { scope: 'environment', window: 'daily', fraction: '0.8' }) },
      { labels: at('warning', { scope: 'client:web', window: 'daily', fraction: '0.8' }) },
    ],
  },
  { alert: 'LLMRouteBudgetThresholdReached', title: '50% crossed again in a new period', input: [threshold('environment', 'daily', '0.5', '1x100 2x20')], at: '110m', fires: [{ labels: at('warning', { scope: 'environment', window: 'daily', fraction: '0.5' }) }] },
  { alert: 'LLMRouteBudgetThresholdReached', title: 'the monthly budget reaches 100%', input: [threshold('environment', 'monthly', '1', '_x10 1x10')], at: '15m', fires: [{ labels: at('warning', { scope: 'environment', window: 'monthly', fraction: '1' }) }] },
  { alert: 'LLMRouteBudgetThresholdReached', title: 'crossings hours ago', input: [threshold('environment', 'daily', '0.8', '1x200'), threshold('environment', 'daily', '0.5', '1x200')], at: '180m', fires: [] },

  // --- LLMRouteBudgetBurnRateHigh (time() starts at 1970-01-01T00:00Z, a 31-day month; budgets: the environment's
  // $100 a day and $1500 a month, client web's $20 a day). What is left comes from the gateway's gauge.
  {
    alert: 'LLMRouteBudgetBurnRateHigh',
    title: 'at 07:00, $0.12 a minute (wasted attempts included) outruns every budget', every: '5m',
    input: [
      gw('llmroute_cost_usd_total', { model: 'chat', provider: 'openai', client: 'web', variant: 'baseline' }, '0+0.1x480'),
      gw('llmroute_wasted_cost_usd_total', { model: 'chat', provider: 'openai', client: 'web' }, '0+0.02x480'),
      left('environment', 'daily', '49.6x480'),
      left('environment', 'monthly', '1449.6x480'),
      left('client:web', 'daily', '0x480'),
    ],
    at: '420m',
    fires: [
      // $0.002/s for the 61200 s left of the day; for the 2653200 s left of the month.
      { labels: at('warning', { scope: 'environment', window: 'daily' }), value: '122.40' },
      { labels: at('warning', { scope: 'environment', window: 'monthly' }), value: '5306.40' },
      { labels: at('warning', { scope: 'client:web', window: 'daily' }), value: '122.40' },
    ],
  },
  {
    alert: 'LLMRouteBudgetBurnRateHigh',
    title: "at 20:00, $90 of the day's $100 spent: $0.05 a minute runs out the $10 left", every: '5m',
    input: [
      gw('llmroute_cost_usd_total', { model: 'chat', provider: 'openai', client: 'batch', variant: 'baseline' }, '30+0.05x1300'),
      left('environment', 'daily', '10x1300'),
      // A pod cut off from Redis estimates from its own share; the rule goes by the smallest estimate.
      left('environment', 'daily', '15x1300', 'gw-2'),
      left('environment', 'monthly', '1410x1300'),
    ],
    at: '1200m',
    fires: [
      // $0.05/60 a second for the 14400 s left of the day: $12, well under the whole $100, over the $10 left. For the
      // 2606400 s left of the month.
      { labels: at('warning', { scope: 'environment', window: 'daily' }), value: '12.00' },
      { labels: at('warning', { scope: 'environment', window: 'monthly' }), value: '2172.00' },
    ],
  },
  {
    alert: 'LLMRouteBudgetBurnRateHigh',
    title: "at 23:00 the day's budgets are safe, the month's is not", every: '5m',
    input: [gw('llmroute_cost_usd_total', { model: 'chat', provider: 'openai', client: 'batch', variant: 'baseline' }, '0+0.06x1400'), left('environment', 'daily', '17.2x1400'), left('environment', 'monthly', '1417.2x1400'), left('client:web', 'daily', '20x1400')],
    at: '1380m',
    // $0.001/s for the 2595600 s left of the month; the 3600 s left of the day cost $3.60, under the $17.20 left.
    fires: [{ labels: at('warning', { scope: 'environment', window: 'monthly' }), value: '2595.60' }],
  },
  {
    alert: 'LLMRouteBudgetBurnRateHigh',
    title: "client batch spends $0.03 a minute: within the environment's budgets, and not client web's", every: '5m',
    input: [gw('llmroute_cost_usd_total', { model: 'chat', provider: 'openai', client: 'batch', variant: 'baseline' }, '0+0.03x480'), left('environment', 'daily', '87.4x480'), left('environment', 'monthly', '1487.4x480'), left('client:web', 'daily', '20x480')],
    at: '420m',
    fires: [],
  },

  // --- LLMRouteBudgetExhausted
  { alert: 'LLMRouteBudgetExhausted', title: "client web's budget is spent and requests are degraded", input: [gw('llmroute_budget_degraded_requests_total', { model: 'chat', to: 'chat-mini' }, '_x5 1 2 3 4 5 6 7 8 9 10')], at: '12m', fires: [{ labels: at('warning', { model: 'chat', to: 'chat-mini', signal: 'degraded_requests' }) }] },
  { alert: 'LLMRouteBudgetExhausted', title: 'requests are refused with budget_exceeded', input: [gw('llmroute_budget_rejected_requests_total', { scope: 'client:web', window: 'daily' }, '_x5 1 2 3 4 5 6 7 8 9 10')], at: '12m', fires: [{ labels: at('critical', { scope: 'client:web', window: 'daily', signal: 'rejected' }) }] },
  { alert: 'LLMRouteBudgetExhausted', title: 'no request refused for a budget', input: [gw('llmroute_budget_rejected_requests_total', { scope: 'client:web', window: 'daily' }, '0x20')], at: '15m', fires: [] },
  { alert: 'LLMRouteBudgetExhausted', title: 'the daily budget reaches its limit (alertAt 1)', input: [threshold('environment', 'daily', '1', '_x10 1x10')], at: '15m', fires: [{ labels: at('critical', { scope: 'environment', window: 'daily', signal: 'limit_reached' }) }] },
  { alert: 'LLMRouteBudgetExhausted', title: 'only 80% is crossed', input: [threshold('environment', 'daily', '0.8', '_x10 1x10')], at: '15m', fires: [] },

  // --- LLMRouteRolloutAborted
  { alert: 'LLMRouteRolloutAborted', title: 'the flag drops from 25% to 0% (namespace exported by the scrape)', input: [rollout(exported, '5x10 25x10 0x20')], at: '30m', fires: [{ labels: { severity: 'warning', namespace: NS, route: 'support-bot', environment: ENV, flag: 'chat-nov-snapshot' } }] },
  { alert: 'LLMRouteRolloutAborted', title: 'the flag drops from 25% to 0% (honor_labels)', input: [rollout({ namespace: NS }, '5x10 25x10 0x20')], at: '30m', fires: [{ labels: { severity: 'warning', namespace: NS, route: 'support-bot', environment: ENV, flag: 'chat-nov-snapshot' } }] },
  {
    alert: 'LLMRouteRolloutAborted',
    title: 'progressing, never started, or another route or namespace rolled back',
    input: [rollout(exported, '5x10 25x10 50x10'), rollout({ ...exported, flag: 'paused' }, '0x30'), rollout({ ...exported, route: 'other' }, '5x10 0x20'), rollout({ ...exported, exported_namespace: 'other' }, '5x10 0x20')],
    at: '30m',
    fires: [],
  },
  { alert: 'LLMRouteRolloutAborted', title: 'rolled back more than an hour ago', input: [rollout(exported, '5x10 0x100')], at: '100m', fires: [] },
];

/** The route's own labels every alert carries. */
const COMMON = { llmroute_route: 'support-bot', llmroute_environment: ENV };
const VALUE = /\{\{\s*(?:\$value\s*\|\s*\w+|printf\s+"[^"]*"\s+\$value)\s*\}\}/g;
const LABEL = /\{\{\s*\$labels\.(\w+)\s*\}\}/g;

/** The rule an expected alert comes from: same name, and its static labels all among the expected labels. */
function ruleFor(rules: AlertRule[], alert: string, labels: Record<string, string>): AlertRule {
  const matching = rules.filter((r) => r.alert === alert && Object.entries(r.labels).every(([k, v]) => labels[k] === v));
  if (matching.length !== 1) throw new Error(`${matching.length} rules of ${alert} match the labels ${JSON.stringify(labels)}`);
  return matching[0]!;
}

/** Renders an annotation the way Prometheus will, for the template subset the rules use. */
function expand(template: string, labels: Record<string, string>, value: string | undefined, where: string): string {
  return template
    .replace(LABEL, (_, name: string) => {
      if (labels[name] === undefined) throw new Error(`${where}: the annotation uses $labels.${name}, which the alert does not have`);
      return labels[name]!;
    })
    .replace(VALUE, () => {
      if (value === undefined) throw new Error(`${where}: the annotation prints $value; the case must say what it renders as`);
      return value;
    });
}

function unitTests(rules: AlertRule[], cases: Case[], ruleFile: string, every: string) {
  return {
    rule_files: [ruleFile],
    evaluation_interval: every,
    tests: cases.map((c) => ({
      name: `${c.alert}: ${c.title}`,
      interval: '1m',
      input_series: c.input,
      alert_rule_test: [
        {
          eval_time: c.at,
          alertname: c.alert,
          exp_alerts: c.fires.map(({ labels, value }) => {
            const all = { ...COMMON, ...labels };
            const rule = ruleFor(rules, c.alert, all);
            const annotations = Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, expand(v, all, value, `${c.alert}: ${c.title}`)]));
            return { exp_labels: all, exp_annotations: annotations };
          }),
        },
      ],
    })),
  };
}

/**
 * Writes the rules and the cases as promtool unit test files in `dir`: one per evaluation interval, the 1m cases in
 * two halves, so promtool runs them in parallel. Returns the test files.
 */
async function writeUnitTests(dir: string, groups: RuleGroup[], cases: Case[]): Promise<string[]> {
  const rules = groups.flatMap((g) => g.rules);
  await writeFile(join(dir, 'rules.yaml'), stringify({ groups }, { lineWidth: 0 }));
  const quick = cases.filter((c) => !c.every);
  const batches: [string, Case[]][] = [
    ['1m', quick.slice(0, Math.ceil(quick.length / 2))],
    ['1m', quick.slice(Math.ceil(quick.length / 2))],
    ['5m', cases.filter((c) => c.every === '5m')],
  ];
  const files: string[] = [];
  for (const [i, [every, batch]] of batches.entries()) {
    if (!batch.length) continue;
    const file = join(dir, `rules.test.${i}.yaml`);
    await writeFile(file, stringify(unitTests(rules, batch, 'rules.yaml', every), { lineWidth: 0 }));
    files.push(file);
  }
  return files;
}

/** Runs promtool test rules on each file at once; the output of those that failed. */
async function failures(files: string[]): Promise<string> {
  const runs = await Promise.all(files.map((file) => testRules(file)));
  return runs.flatMap((run, i) => (run.code === 0 ? [] : [`${files[i]}:\n${run.output}`])).join('\n');
}

const ruleKey = (rule: AlertRule) => `${rule.alert} ${JSON.stringify(rule.labels)}`;

describe('alert rules under promtool', () => {
  let dir: string;
  let keep = false;
  beforeAll(async () => {
    findPromtool(); // fails with the apt-get hint when promtool is missing
    dir = await mkdtemp(join(tmpdir(), 'llmroute-promtool-'));
  });
  afterAll(async () => {
    if (dir && !keep) await rm(dir, { recursive: true, force: true });
  });

  const route = loadRoute();
  const groups = alertRuleGroups(route, ENV, NS);
  const rules = groups.flatMap((g) => g.rules);

  it('renders every alert for a route with budgets, a degrading client budget, rate limits, Redis and a rollout', () => {
    expect([...new Set(rules.map((r) => r.alert))].sort()).toEqual([...ALERT_NAMES].sort());
  });

  it('passes promtool check rules', async () => {
    const file = join(dir, 'rules.yaml');
    await writeFile(file, stringify({ groups }, { lineWidth: 0 }));
    const run = await checkRules(file);
    expect({ code: run.code, output: run.output }).toEqual({ code: 0, output: expect.stringContaining(`SUCCESS: ${rules.length} rules found`) });
  });

  it('has, for every rule, a case where it fires; for every alert, a case where it must stay silent', () => {
    const fired = new Set(CASES.flatMap((c) => c.fires.map((f) => ruleKey(ruleFor(rules, c.alert, { ...COMMON, ...f.labels })))));
    expect(rules.map(ruleKey).filter((key) => !fired.has(key))).toEqual([]);
    const silent = new Set(CASES.filter((c) => c.fires.length === 0).map((c) => c.alert));
    expect(ALERT_NAMES.filter((name) => !silent.has(name))).toEqual([]);
  });

  it('passes promtool test rules: each alert fires on its fault, with its labels and annotations, and stays silent otherwise', async () => {
    const failed = await failures(await writeUnitTests(dir, groups, CASES));
    if (failed) {
      keep = true;
      throw new Error(`promtool test rules failed (the rules and tests are kept in ${dir}):\n${failed}`);
    }
  }, 120_000);
});

describe('alert rules without a namespace (rendered for any namespace)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'llmroute-promtool-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const groups = alertRuleGroups(loadRoute(), ENV, undefined);
  const anyNamespace = (labels: Record<string, string>) => ({ ...labels, namespace: 'elsewhere' });
  const cases: Case[] = [
    { alert: 'LLMRouteRolloutAborted', title: 'a rollback in whatever namespace', input: [rollout({ namespace: 'llmroute-system', exported_namespace: 'elsewhere' }, '5x10 25x10 0x20')], at: '30m', fires: [{ labels: { severity: 'warning', route: 'support-bot', environment: ENV, flag: 'chat-nov-snapshot' } }] },
    { alert: 'LLMRouteRolloutAborted', title: 'a rollout that progresses', input: [rollout({ namespace: 'elsewhere' }, '5x10 25x10 50x10')], at: '30m', fires: [] },
    { alert: 'LLMRouteGatewayDown', title: 'the gateway in whatever namespace stops answering', input: [{ series: `up{job="${JOB}", namespace="elsewhere", pod="gw-1"}`, values: '1x5 0x20' }], at: '15m', fires: [{ labels: anyNamespace({ severity: 'critical', job: JOB }) }] },
    { alert: 'LLMRouteGatewayDown', title: 'no target: absent() has only the job', input: [], at: '10m', fires: [{ labels: { severity: 'critical', job: JOB } }] },
  ];

  it('passes promtool check rules and test rules', async () => {
    await writeFile(join(dir, 'rules.yaml'), stringify({ groups }, { lineWidth: 0 }));
    expect((await checkRules(join(dir, 'rules.yaml'))).code).toBe(0);
    expect(await failures(await writeUnitTests(dir, groups, cases))).toBe('');
  });
});

describe('the dashboard under promtool', () => {
  /** Grafana's variables as Grafana would fill them in. */
  const fill = (expr: string) =>
    expr.replaceAll('$__rate_interval', '2m').replaceAll('$__range', '6h').replaceAll('$namespace', '.*').replaceAll('$route', 'support-bot').replaceAll('$environment', ENV);

  it('every panel and variable query parses (as recording rules, through promtool check rules)', async () => {
    const dashboard = gatewayDashboard() as { panels: { title: string; targets?: { expr: string }[] }[]; templating: { list: { type: string; query: unknown }[] } };
    const exprs = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => (v.query as { query: string }).query.replace(/^label_values\((.*), \w+\)$/, '$1')),
    ];
    const dir = await mkdtemp(join(tmpdir(), 'llmroute-promtool-'));
    try {
      const file = join(dir, 'dashboard.rules.yaml');
      await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr: fill(expr) })) }] }, { lineWidth: 0 }));
      const run = await checkRules(file);
      expect({ code: run.code, output: run.output }).toEqual({ code: 0, output: expect.stringContaining(`SUCCESS: ${exprs.length} rules found`) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
