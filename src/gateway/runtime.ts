/**
 * The gateway's live state: the config serving now and everything built from it (breakers, limiters, transports,
 * keys, client tokens). Config and key files are polled; a new config is validated first and replaces the old one
 * only when valid, so a bad ConfigMap never takes a serving gateway down. A request keeps the snapshot it started with.
 */
import type { CompiledProvider, GatewayConfig } from '../api/gateway-config.js';
import type { ProviderLimits } from '../api/schema.js';
import type { z } from 'zod';
import type { Logger } from '../log.js';
import { ClientTokens } from './auth.js';
import { BreakerRegistry, BREAKER_GAUGE } from './breaker.js';
import { readConfig, type ConfigLoad } from './config-source.js';
import { Cooldowns } from './cooldown.js';
import { KeyStore } from './key-store.js';
import { LocalLimiter, type Limiter, type OnHold, type WaitOutcome } from './limiter.js';
import type { GatewayMetrics } from './metrics.js';
import { adapterFor } from './providers/index.js';
import { openai } from './providers/openai.js';
import { SharedLimiter } from './rate-limit/shared-limiter.js';
import { RateLimitStore } from './rate-limit/store.js';
import { MockTransport } from './providers/mock.js';
import { RetryBudget } from './retry-budget.js';
import type { RouterDeps } from './router.js';
import { loadEncodings } from './tokenizers/encodings.js';
import type { Tracing } from './tracing.js';
import { HttpTransport, type Transport } from './transport.js';

type ProviderLimitsT = z.output<typeof ProviderLimits>;

export interface Snapshot {
  config: GatewayConfig;
  hash: string;
  deps: RouterDeps;
  /** Request and attempt spans; absent while tracing is off. The same for every snapshot (set from the environment). */
  tracing?: Tracing | undefined;
}

export interface RuntimeOptions {
  configPath: string;
  log: Logger;
  metrics: GatewayMetrics;
  /** How often config and key files are re-read. */
  reloadIntervalMs?: number;
  tracing?: Tracing | undefined;
}

export class Runtime {
  readonly keys: KeyStore;
  readonly clients = new ClientTokens();
  private snapshot: Snapshot | undefined;
  private readonly http = new HttpTransport();
  private mocks = new Map<string, MockTransport>();
  private limiters = new Map<string, Limiter>();
  private clientLimiters = new Map<string, Limiter>();
  private readonly cooldowns = new Cooldowns();
  private breakers: BreakerRegistry | undefined;
  private retryBudget: RetryBudget | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastProblem: string | undefined;

  /** `rateLimits`: with `redis` in the config, where every replica's limiters share their buckets. */
  private constructor(private readonly options: RuntimeOptions, environment: string, private readonly rateLimits: RateLimitStore | undefined) {
    this.keys = new KeyStore({
      environment,
      log: (level, message, fields) => options.log(level, message, fields),
      onReload: (provider, outcome) => options.metrics.keyReloads.inc({ provider, result: outcome }),
      onSetAside: (provider, fingerprint) => options.metrics.keyFailures.inc({ provider, fingerprint }),
    });
  }

  /** Loads the config once; throws with the problem when there is no valid config to start with. */
  static async start(options: RuntimeOptions): Promise<Runtime> {
    const first = await readConfig(options.configPath);
    if (!first.ok) throw new Error(first.problem);
    // Connected once: like budgets, a new Redis URL needs a restart.
    const rateLimits = first.config.redis ? await RateLimitStore.connect(first.config.redis.urlFile, { route: first.config.route, onDegraded: (degraded, error) => Runtime.reportRateLimitStore(options, degraded, error) }) : undefined;
    const runtime = new Runtime(options, first.config.route.environment, rateLimits);
    await runtime.apply(first);
    options.metrics.configReloadSuccessful.set(1);
    let reloading = false;
    runtime.timer = setInterval(() => {
      // A reload slower than the interval must not overlap the next one: both would report the same change, and the
      // one that read the files first could finish last and put the replaced key or config back.
      if (reloading) return;
      reloading = true;
      void runtime.reload().finally(() => {
        reloading = false;
      });
    }, options.reloadIntervalMs ?? 2000);
    runtime.timer.unref();
    return runtime;
  }

  current(): Snapshot {
    return this.snapshot as Snapshot;
  }

  /** Why the gateway cannot serve, or nothing: every required key present. */
  problems(): string[] {
    return this.keys.problems();
  }

  async reload(): Promise<void> {
    const next = await readConfig(this.options.configPath);
    this.options.metrics.configReloadSuccessful.set(next.ok ? 1 : 0);
    if (!next.ok) {
      if (next.problem !== this.lastProblem) {
        this.options.log('error', 'config rejected; the previous config keeps serving', { problem: next.problem });
        this.options.metrics.configReloads.inc({ result: 'failure' });
      }
      this.lastProblem = next.problem;
      await this.keys.refresh();
      await this.clients.load(this.current().config);
      return;
    }
    this.lastProblem = undefined;
    if (next.hash === this.snapshot?.hash) {
      await this.keys.refresh();
      await this.clients.load(next.config);
      return;
    }
    await this.apply(next);
    this.options.metrics.configReloads.inc({ result: 'success' });
    this.options.log('info', 'config reloaded', { hash: next.hash });
  }

  private transport(provider: CompiledProvider): Transport {
    if (provider.type !== 'mock') return this.http;
    return this.mocks.get(provider.name) as MockTransport;
  }

  private static reportRateLimitStore({ log, metrics }: RuntimeOptions, degraded: boolean, error: unknown): void {
    metrics.rateLimitStoreDegraded.set(degraded ? 1 : 0);
    if (degraded) log('error', 'Redis unreachable: rate limits enforced on this replica\'s local share', { error: String(error) });
    else log('info', 'Redis reachable again: rate limits shared', {});
  }

  /** A limiter per entity with limits; unchanged limits keep their limiter, and with it the queue of waiting requests. */
  private limitersFor(
    kind: 'provider' | 'client',
    entities: readonly { name: string; limits?: ProviderLimitsT | undefined }[],
    previous: Map<string, Limiter>,
    before: readonly { name: string; limits?: ProviderLimitsT | undefined }[] | undefined,
    onWait: (name: string, waitedMs: number, outcome: string) => void,
  ): Map<string, Limiter> {
    const next = new Map<string, Limiter>();
    for (const entity of entities) {
      if (!entity.limits) continue;
      const kept = previous.get(entity.name);
      const same = kept && JSON.stringify(before?.find((e) => e.name === entity.name)?.limits) === JSON.stringify(entity.limits);
      next.set(entity.name, same && kept ? kept : this.limiter(kind, entity.name, entity.limits, (waitedMs, outcome) => onWait(entity.name, waitedMs, outcome)));
    }
    return next;
  }

  /** What a provider's limiter does when the provider's headers hold it back. */
  private providerHold(provider: string): OnHold {
    return (unit, hold) => {
      this.options.metrics.rateLimitHolds.inc({ provider, unit, reason: hold.reason });
      this.options.log('debug', 'rate limit held back by the provider\'s headers', { provider, unit, reason: hold.reason, ceiling: hold.ceiling, message: hold.message });
    };
  }

  /** Shared by every replica through Redis when the config has it; else this process's own. */
  private limiter(kind: 'provider' | 'client', name: string, limits: ProviderLimitsT, onWait: (waitedMs: number, outcome: WaitOutcome) => void): Limiter {
    // Only providers send rate-limit headers (the router gives a provider's to its limiter): a client's is never held.
    const onHold = kind === 'provider' ? { onHold: this.providerHold(name) } : {};
    if (this.rateLimits === undefined) return new LocalLimiter({ limits, onWait, ...onHold });
    // Read when an outage begins: the config serving then says how many replicas share the limit.
    return new SharedLimiter({ store: this.rateLimits, name: `${kind}:${name}`, limits, replicas: () => this.current().config.replicas, onWait, ...onHold });
  }

  /** The limiter of a client with `limits`, or undefined. */
  clientLimiter(client: string): Limiter | undefined {
    return this.clientLimiters.get(client);
  }

  private async apply(load: Extract<ConfigLoad, { ok: true }>): Promise<void> {
    const { config } = load;
    const { metrics } = this.options;
    await this.keys.load(config.providers);
    await this.clients.load(config);
    // Before the config serves: loading o200k_base takes up to half a second that no request should wait for.
    await loadEncodings(config);
    this.mocks = new Map(config.providers.filter((p) => p.type === 'mock').map((p) => [p.name, new MockTransport(p.name, p.mock ?? { latencyMs: 0, failureRatio: 0, failureKind: 'server-error' })]));
    const limiters = this.limitersFor('provider', config.providers, this.limiters, this.snapshot?.config.providers, (name, waitedMs, outcome) => metrics.queueWait.observe({ provider: name, outcome }, waitedMs / 1000));
    this.limiters = limiters;
    this.clientLimiters = this.limitersFor('client', config.clients, this.clientLimiters, this.snapshot?.config.clients, () => undefined);
    if (!this.breakers) {
      this.breakers = new BreakerRegistry(config.circuitBreaker, {
        onTransition: (t) => {
          // Keys are `${provider}/${model}`; provider names cannot hold a '/', model names can.
          const slash = t.key.indexOf('/');
          const labels = { provider: t.key.slice(0, slash), model: t.key.slice(slash + 1) };
          metrics.breakerState.set(labels, BREAKER_GAUGE[t.to]);
          this.options.log(t.to === 'open' ? 'warn' : 'info', `circuit breaker ${t.to}`, { ...labels, reason: t.reason });
        },
      });
    } else {
      this.breakers.reload(config.circuitBreaker);
    }
    if (!this.retryBudget || this.snapshot?.config.retry.budgetPercent !== config.retry.budgetPercent) {
      this.retryBudget = new RetryBudget({ budgetPercent: config.retry.budgetPercent });
    }
    const deps: RouterDeps = {
      config,
      keys: this.keys,
      transport: (provider) => this.transport(provider),
      // The mock speaks OpenAI's wire format through its in-process transport.
      adapter: (provider) => (provider.type === 'mock' ? openai : (adapterFor(provider.type) ?? openai)),
      breakers: this.breakers,
      cooldowns: this.cooldowns,
      limiter: (provider) => limiters.get(provider),
      retryBudget: this.retryBudget,
      observer: {
        attempt: (record) => {
          metrics.attempts.inc({ provider: record.provider, model: record.model, result: record.outcome });
          if (record.durationMs) metrics.attemptDuration.observe({ provider: record.provider, model: record.model, result: record.outcome }, record.durationMs / 1000);
        },
        drift: (provider, asked, answered) => {
          metrics.drift.inc({ provider, pinned: asked, answered });
          this.options.log('warn', 'model drift: the provider answered with another model than the pin', { provider, pinned: asked, answered });
        },
        malformedEvent: (provider) => metrics.malformedEvents.inc({ provider }),
      },
    };
    this.snapshot = { config, hash: load.hash, deps, tracing: this.options.tracing };
    metrics.configReloadTimestamp.set(Date.now() / 1000);
  }

  limiterDepths(): { provider: string; depth: number }[] {
    return [...this.limiters].map(([provider, limiter]) => ({ provider, depth: limiter.queueDepth() }));
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.rateLimits?.close();
    await this.http.close();
  }
}
