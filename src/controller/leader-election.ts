/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does it:
 * - a replica takes the lease when it is free (no holder, e.g. released) or has not changed for its
 *   leaseDurationSeconds, measured on the replica's own monotonic clock from when it saw the last change (not from
 *   `renewTime`, so clock skew between nodes does not matter);
 * - every write is conditioned on the resourceVersion just read, so of two replicas racing, one gets a 409;
 * - the leader renews every retryPeriod; when no renewal has succeeded for renewDeadline (< leaseDuration) it stops
 *   leading, which leaves it leaseDuration - renewDeadline to stop reconciling before another replica may take over;
 * - on a graceful stop it releases the lease, so the next leader takes over within a retryPeriod.
 *
 * An elector leads at most once: `run()` resolves when leadership ends. To campaign again after losing the lease, use
 * a new elector and nothing built while leading (controller.ts does so), or exit the process as client-go users do.
 */
import * as k8s from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LeaderElectorOptions {
  kc: k8s.KubeConfig;
  namespace: string;
  name: string;
  /** Unique per replica, e.g. the pod name. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Whether `stop()` hands the lease over at once (true) or lets it expire (false, like a crash). */
  releaseOnStop?: boolean;
  /**
   * Called once the lease is ours; `signal` aborts when leadership ends. If it returns a promise, the lease is
   * released only after it settles: resolve it once reconciling has stopped.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called after leadership ended (never if this replica did not lead). */
  onStoppedLeading: () => void;
  log: (message: string, fields?: Record<string, unknown>) => void;
}

/** Whether `identity` may write itself into a lease with `spec`, whose last change it saw at `observedAt`. */
export function mayAcquire(spec: k8s.V1LeaseSpec | undefined, identity: string, observedAt: number, now: number): boolean {
  const holder = spec?.holderIdentity;
  if (!holder || holder === identity) return true;
  return observedAt + (spec.leaseDurationSeconds ?? 0) * 1000 <= now;
}

/**
 * Lease times are MicroTime: the API server accepts exactly six fractional digits, and a plain Date serializes with
 * three. client-node's V1MicroTime serializes with six, but it reads them back as strings, despite its types.
 */
const microTime = (time: Date | string | number) => new k8s.V1MicroTime(new Date(time).getTime());

/** The spec that makes `identity` the holder at `now` (ms since the epoch). */
export function leaderSpec(current: k8s.V1LeaseSpec | undefined, identity: string, leaseDurationSeconds: number, now: number): k8s.V1LeaseSpec {
  const renewing = current?.holderIdentity === identity;
  return {
    holderIdentity: identity,
    leaseDurationSeconds,
    acquireTime: renewing && current.acquireTime ? microTime(current.acquireTime) : microTime(now),
    renewTime: microTime(now),
    leaseTransitions: current === undefined ? 0 : (current.leaseTransitions ?? 0) + (renewing ? 0 : 1),
  };
}

/** client-go's release: no holder, so any replica may take it at once. */
export function releasedSpec(current: k8s.V1LeaseSpec | undefined, now: number): k8s.V1LeaseSpec {
  return { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: current?.leaseTransitions ?? 0 };
}

/**
 * A deadline for one request. The generated APIs take no AbortSignal, but a middleware may set one. The middleware
 * must be client-node's Observable kind: the object-parameter APIs do not accept promise middleware at runtime.
 */
function withTimeout(ms: number): k8s.ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (request) => {
          request.setSignal(AbortSignal.timeout(Math.max(1, Math.ceil(ms))));
          return new k8s.Observable(Promise.resolve(request));
        },
        post: (response) => new k8s.Observable(Promise.resolve(response)),
      },
    ],
    // The default, "replace", would drop the client's own middleware (its User-Agent header).
    middlewareMergeStrategy: 'append',
  };
}

const hasStatus = (error: unknown, code: number) => error instanceof k8s.ApiException && error.code === code;

type Attempt = 'holding' | 'held-by-other' | 'conflict';

export class LeaderElector {
  private readonly api: k8s.CoordinationV1Api;
  private readonly leaseDurationSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly stopping = new AbortController();
  /** The lease as last read or written, and when (monotonic ms) its resourceVersion last changed. */
  private observed: { lease: k8s.V1Lease; at: number } | undefined;
  private running: Promise<void> | undefined;
  private leading = false;

  constructor(private readonly options: LeaderElectorOptions) {
    const { leaseDurationMs = 15_000, renewDeadlineMs = 10_000, retryPeriodMs = 2_000 } = options;
    if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs && retryPeriodMs > 0)) {
      throw new Error(`leader election needs leaseDuration > renewDeadline > retryPeriod > 0, got ${leaseDurationMs}, ${renewDeadlineMs}, ${retryPeriodMs} ms`);
    }
    this.leaseDurationSeconds = Math.ceil(leaseDurationMs / 1000);
    this.renewDeadlineMs = renewDeadlineMs;
    this.retryPeriodMs = retryPeriodMs;
    this.api = options.kc.makeApiClient(k8s.CoordinationV1Api);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Campaigns, then leads until the lease is lost or `stop()` is called. Resolves when that is over. */
  run(): Promise<void> {
    this.running ??= this.campaignAndLead();
    return this.running;
  }

  /** Stops campaigning or leading (releasing the lease unless `releaseOnStop` is false) and waits until done. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  private async campaignAndLead(): Promise<void> {
    const acquiredAt = await this.acquire();
    if (acquiredAt === undefined) return;
    const leadership = new AbortController();
    this.leading = true;
    this.options.log('started leading', { lease: this.options.name, identity: this.options.identity });
    const work = (async () => this.options.onStartedLeading(leadership.signal))().catch((error: unknown) =>
      this.options.log('onStartedLeading failed', { error: String(error) }),
    );
    await this.renewUntilLost(acquiredAt);
    leadership.abort();
    await work;
    if (this.stopping.signal.aborted && this.options.releaseOnStop !== false) await this.release();
    this.leading = false;
    this.options.log('stopped leading', { lease: this.options.name, identity: this.options.identity });
    this.options.onStoppedLeading();
  }

  /** Retries every retryPeriod until the lease is ours; returns when the successful attempt started. */
  private async acquire(): Promise<number | undefined> {
    while (!this.stopping.signal.aborted) {
      const attemptAt = performance.now();
      try {
        if ((await this.tryAcquireOrRenew(this.renewDeadlineMs)) === 'holding') return attemptAt;
      } catch (error) {
        this.options.log('could not acquire the lease', { error: String(error) });
      }
      await this.pause(this.retryPeriodMs);
    }
    return undefined;
  }

  /**
   * Renews every retryPeriod. Returns on `stop()`, when another replica holds the lease, or when renewDeadline has
   * passed since the start of the last successful attempt (the start: the write may have landed any time after it).
   */
  private async renewUntilLost(acquiredAt: number): Promise<void> {
    let renewedAt = acquiredAt;
    for (;;) {
      await this.pause(Math.min(this.retryPeriodMs, renewedAt + this.renewDeadlineMs - performance.now()));
      if (this.stopping.signal.aborted) return;
      const attemptAt = performance.now();
      const remaining = renewedAt + this.renewDeadlineMs - attemptAt;
      if (remaining <= 0) {
        this.options.log('lease not renewed within the renew deadline', { renewDeadlineMs: this.renewDeadlineMs });
        return;
      }
      try {
        const attempt = await this.tryAcquireOrRenew(remaining);
        if (attempt === 'holding') renewedAt = attemptAt;
        if (attempt === 'held-by-other') return;
      } catch (error) {
        this.options.log('could not renew the lease', { error: String(error) });
      }
    }
  }

  private async tryAcquireOrRenew(timeoutMs: number): Promise<Attempt> {
    const { namespace, name, identity } = this.options;
    const options = withTimeout(timeoutMs);
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace, name }, options);
    } catch (error) {
      if (!hasStatus(error, 404)) throw error;
      const body = { metadata: { name, namespace }, spec: leaderSpec(undefined, identity, this.leaseDurationSeconds, Date.now()) };
      return this.write(() => this.api.createNamespacedLease({ namespace, body }, options));
    }
    this.observe(lease);
    if (!mayAcquire(lease.spec, identity, this.observed!.at, performance.now())) return 'held-by-other';
    const spec = leaderSpec(lease.spec, identity, this.leaseDurationSeconds, Date.now());
    return this.write(() => this.api.replaceNamespacedLease({ namespace, name, body: { ...lease, spec } }, options));
  }

  /** A create or update; 409 means another replica wrote first (AlreadyExists, or a stale resourceVersion). */
  private async write(request: () => Promise<k8s.V1Lease>): Promise<Attempt> {
    try {
      this.observe(await request());
      return 'holding';
    } catch (error) {
      if (hasStatus(error, 409)) return 'conflict';
      throw error;
    }
  }

  private observe(lease: k8s.V1Lease): void {
    const previous = this.observed?.lease;
    if (previous?.metadata?.resourceVersion === lease.metadata?.resourceVersion) return;
    this.observed = { lease, at: performance.now() };
    const holder = lease.spec?.holderIdentity;
    if (holder !== previous?.spec?.holderIdentity) this.options.log('lease holder', { lease: this.options.name, holder });
  }

  /** Writes the lease as released, if this replica still holds it; a 409 means it already does not. */
  private async release(): Promise<void> {
    const lease = this.observed?.lease;
    if (lease?.spec?.holderIdentity !== this.options.identity) return;
    const { namespace, name } = this.options;
    try {
      const body = { ...lease, spec: releasedSpec(lease.spec, Date.now()) };
      this.observe(await this.api.replaceNamespacedLease({ namespace, name, body }, withTimeout(this.renewDeadlineMs)));
    } catch (error) {
      this.options.log('could not release the lease', { error: String(error) });
    }
  }

  /** Sleeps, but wakes up on `stop()`. */
  private pause(ms: number): Promise<void> {
    return sleep(Math.max(0, ms), undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }
}
