/**
 * A running gateway: the API server, the metrics server and the runtime behind them. Stopping drains: readiness
 * fails at once (so Kubernetes stops sending traffic), new connections are refused, and requests in flight, streams
 * included, get up to the grace period to finish.
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { GatewayMetrics, readBudgets, type SpentReader } from './metrics.js';
import { Runtime } from './runtime.js';
import { tracingSettings } from './tracing-settings.js';
import { createGatewayServer } from './server.js';
import { readConfig } from './config-source.js';
import { readFile } from 'node:fs/promises';
import type { GatewayConfig } from '../api/gateway-config.js';
import { LedgerGate, replicaId, type BudgetGate } from './budget-gate.js';
import type { OnThreshold } from './budget/ledger.js';
import { MemoryLedger } from './budget/memory-ledger.js';
import { connectBudgetRedis } from './budget/redis-client.js';
import { RedisLedger } from './budget/redis-ledger.js';
import { ResilientLedger } from './budget/resilient-ledger.js';

export interface GatewayOptions {
  configPath: string;
  host?: string;
  /** Overrides the config's `listen.port`; 0 picks a free port. */
  port?: number;
  metricsPort?: number;
  maxBodyBytes?: number;
  reloadIntervalMs?: number;
  logPrompts?: boolean;
  log: Logger;
}

export interface RunningGateway {
  url: string;
  metricsUrl: string;
  runtime: Runtime;
  metrics: GatewayMetrics;
  /** Drains for at most `graceMs`, then closes what is left. */
  stop(graceMs?: number): Promise<void>;
}

/** How long startup waits for the budget Redis: its client's connect time-out. */
const REDIS_STARTUP_WAIT_MS = 2000;

/** Resolves true once `redis` is ready, false on its first error or after `timeoutMs`. */
function connected(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
      resolve(ok);
    };
    const onReady = () => done(true);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.once('ready', onReady);
    redis.once('error', onError);
  });
}

/** One ledger per process: in memory, or shared through Redis when the route gives the gateway one. */
async function budgetGate(config: GatewayConfig, current: () => GatewayConfig, metrics: GatewayMetrics, log: Logger): Promise<BudgetGate> {
  const onThreshold: OnThreshold = (crossing) => {
    metrics.budgetThreshold.inc({ scope: crossing.scope, window: crossing.window, fraction: String(crossing.fraction) });
    log('warn', 'budget threshold crossed', { scope: crossing.scope, window: crossing.window, fraction: crossing.fraction, spentUSD: crossing.spentUSD, limitUSD: crossing.limitUSD });
  };
  // The budget gauges read the ledger in use when scraped.
  const gauge = (read: SpentReader) => metrics.watchBudgets(() => readBudgets(current(), read, Date.now()), (error) => log('debug', 'budget gauges keep their last values: the ledger did not answer', { error: String(error) }));
  if (!config.redis) {
    const memory = new MemoryLedger({ onThreshold });
    gauge((scope, now) => memory.spent(scope, now));
    return new LedgerGate(current, memory);
  }
  const url = (await readFile(config.redis.urlFile, 'utf8')).trim();
  const redis = connectBudgetRedis(url, {}, (error) => log('warn', 'budget store (Redis) error', { error: error.message }));
  const shared = new RedisLedger({ redis, route: config.route, onThreshold, replicaId: replicaId(), log });
  // The client fails commands fast while it is not connected (no offline queue). Serving before the connection is
  // up would send the first requests to a local share of the whole budget (no heartbeat yet: 1 replica), and the
  // lost first heartbeat would leave this replica uncounted by the others for a heartbeat period, so their shares
  // would be too large. Connect and register before serving; a Redis out of reach at startup delays it at most 2 s.
  if (await connected(redis, REDIS_STARTUP_WAIT_MS)) await shared.heartbeat(Date.now()).catch((error: unknown) => log('warn', 'budget heartbeat failed', { error: String(error) }));
  else log('warn', 'Redis not reachable at startup: budgets start on this replica\'s local share', {});
  shared.start();
  const ledger = new ResilientLedger({
    redis: shared,
    minReplicas: config.replicas,
    onThreshold,
    log,
    onDegraded: (degraded) => {
      metrics.budgetStoreDegraded.set(degraded ? 1 : 0);
      log(degraded ? 'error' : 'info', degraded ? 'Redis unreachable: budgets enforced on this replica\'s local share' : 'Redis reachable again: budgets shared', {});
    },
  });
  // While Redis is out of reach, the share this replica enforces; otherwise Redis, without the fallback on failure
  // that `ledger.spent` has: a scrape must not switch budgets to the local share.
  gauge(async (scope, now) => ledger.shareSpent(scope, now) ?? shared.spent(scope, now));
  return new LedgerGate(current, ledger, async () => {
    ledger.close();
    await shared.close();
    redis.disconnect();
  });
}

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const first = await readConfig(options.configPath);
  if (!first.ok) throw new Error(first.problem);
  const metrics = new GatewayMetrics({ route: first.config.route.name, environment: first.config.route.environment });
  // Configured by the standard OTEL_* variables, and off without an endpoint. The OpenTelemetry SDK is loaded only
  // when it is on: it adds some 150 ms and 15 MB to startup.
  const tracingOn = tracingSettings(process.env);
  const tracing = tracingOn ? (await import('./tracing.js')).Tracing.start(tracingOn, first.config.route, options.log) : undefined;
  const runtime = await Runtime.start({ configPath: options.configPath, log: options.log, metrics, tracing, ...(options.reloadIntervalMs ? { reloadIntervalMs: options.reloadIntervalMs } : {}) });
  let draining = false;
  const budgets = await budgetGate(first.config, () => runtime.current().config, metrics, options.log);
  const api = createGatewayServer({ runtime, metrics, log: options.log, maxBodyBytes: options.maxBodyBytes ?? 4 * 1024 * 1024, draining: () => draining, budgets, ...(options.logPrompts ? { logPrompts: true } : {}) });
  // Long streams are normal here: Node's default 5-minute request timeout would cut them.
  api.requestTimeout = 0;
  api.headersTimeout = 60_000;
  const metricsServer = createServer((request, response) => {
    if ((request.url ?? '').split('?')[0] !== '/metrics') return void response.writeHead(404).end();
    metrics.ready.set(!draining && runtime.problems().length === 0 ? 1 : 0);
    for (const { provider, depth } of runtime.limiterDepths()) metrics.queueDepth.set({ provider }, depth);
    metrics.registry
      .metrics()
      .then((text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text))
      .catch((error: unknown) => response.writeHead(500).end(String(error)));
  });
  const host = options.host ?? '0.0.0.0';
  const config = runtime.current().config;
  const port = await listen(api, options.port ?? config.listen.port, host);
  const metricsPort = await listen(metricsServer, options.metricsPort ?? config.listen.metricsPort, host);
  const problems = runtime.problems();
  options.log(problems.length ? 'warn' : 'info', problems.length ? 'gateway started but not ready' : 'gateway ready', { port, metricsPort, route: config.route, ...(problems.length ? { problems } : {}) });
  const shownHost = host === '0.0.0.0' ? '127.0.0.1' : host;

  return {
    url: `http://${shownHost}:${port}`,
    metricsUrl: `http://${shownHost}:${metricsPort}/metrics`,
    runtime,
    metrics,
    async stop(graceMs = 30_000) {
      draining = true;
      const closed = new Promise<void>((resolve) => api.close(() => resolve()));
      api.closeIdleConnections();
      // A keep-alive connection whose request finishes during the drain would otherwise stay open, and hold the
      // drain, until its client lets it go: close connections as they fall idle.
      const idle = setInterval(() => api.closeIdleConnections(), 25);
      const timer = setTimeout(() => api.closeAllConnections(), graceMs);
      await closed;
      clearInterval(idle);
      clearTimeout(timer);
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      await budgets.close();
      await runtime.close();
      await tracing?.shutdown();
    },
  };
}
