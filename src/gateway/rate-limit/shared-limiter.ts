/**
 * # Rate limits shared through Redis
 *
 * With `gateway.redis`, a provider's (or a client's) requests and tokens per minute are one pair of buckets in Redis
 * for every replica of the route environment, so N replicas together stay under the limit. The buckets are the
 * in-process limiter's (limiter.ts), kept as GCRA cells; see redis-script.ts.
 *
 * - **One round trip per admission.** The request asks ADMIT for the earliest time both buckets have room, within
 *   the longest wait (10 s, or less when the request's deadline is nearer). Redis takes the units at that time and
 *   answers with the wait; the request waits it out here and goes. Beyond the longest wait nothing is taken and the
 *   request is refused with that wait as its retry-after, at once, so the router can fail over.
 * - **Order.** A replica sends its admissions on one connection, which Redis runs in order: its requests get their
 *   times in arrival order. At most 100 wait at once per replica; the next is refused (`queue_full`) without asking
 *   Redis.
 * - **Corrections ride along.** What a settle finds the estimate was off by, a waiting request that was aborted (its
 *   units given back), and the hand-over after an outage are added up here and applied by the next admission's
 *   script, before it decides. A hold from the provider's headers goes out at once, in a script call of its own.
 * - **Redis out of reach.** A failed command (no connection, a time-out, an error) switches every limiter of the
 *   process to a local share at once, like budgets: an in-process limiter enforcing 1/replicas of each limit, the
 *   replica count being the compiled config's `replicas`. It starts owing this replica's part (1/replicas) of what
 *   the shared buckets owed when it last saw them, so the share is of what was left, not a fresh minute. Requests
 *   already given a time by Redis keep it. The store probes Redis every second; runtime.ts logs the outage and the
 *   return.
 * - **Return.** At its next admission after Redis answers again, a limiter hands over what its local share took
 *   during the outage and has not refilled yet, including what its local queue still holds (those requests keep
 *   waiting there and are admitted locally). That amount is charged to the shared buckets in the same script call,
 *   before the admission. What the share took over from Redis at the start is left out: Redis counts that already.
 * - **Nothing counted twice, within bounds.** A command that failed may or may not have been applied: the charges it
 *   carried are dropped rather than sent again (mostly refunds, whose loss errs on the safe side; a hand-over lost
 *   that way lets the shared buckets admit that much extra, once), and its request is admitted locally (counted in
 *   both at worst, which only delays others).
 *
 * Approximations, each bounded by about one bucket: the local share assumes traffic spread evenly over replicas (a
 * busy replica throttles early, the safe direction); a replica that never reached Redis starts its share full; the
 * replica count is the configured one, so the surge pod of a rolling update is not counted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { checkTokens, LimiterError, LocalLimiter, requestBurst, type AcquireOptions, type Amounts, type Limiter, type OnHold, type ProviderLimits, type Reservation, type WaitOutcome } from '../limiter.js';
import { holdFor, readProviderReport, type HeaderReader, type Hold, type Unit } from './provider-headers.js';
import type { BucketArgs, RateLimitStore } from './store.js';

export interface SharedLimiterOptions {
  store: RateLimitStore;
  /** Names the buckets in Redis: `provider:<name>` or `client:<name>`. */
  name: string;
  limits: ProviderLimits;
  /** The replica count a local share divides by, read when an outage begins. */
  replicas: () => number;
  maxQueue?: number;
  maxWaitMs?: number;
  onWait?: (waitedMs: number, outcome: WaitOutcome) => void;
  onHold?: OnHold;
}

/** A bucket in Redis: milliseconds per unit (0: no limit) and capacity. */
interface BucketSpec {
  per: number;
  capacity: number;
}

/** The local share of one outage. */
interface Fallback {
  limiter: LocalLimiter;
  outage: number;
  /** What it took over from the shared buckets when the outage began: Redis counts that already. */
  seed: Amounts;
  replicas: number;
  since: number;
}

const UNITS = ['requests', 'tokens'] as const;

function bucketSpecs({ requestsPerMinute: rpm, tokensPerMinute: tpm }: ProviderLimits): Record<Unit, BucketSpec> {
  return {
    requests: rpm === undefined ? { per: 0, capacity: 0 } : { per: 60_000 / rpm, capacity: requestBurst(rpm) },
    tokens: tpm === undefined ? { per: 0, capacity: 0 } : { per: 60_000 / tpm, capacity: tpm },
  };
}

export class SharedLimiter implements Limiter {
  private readonly options: SharedLimiterOptions;
  private readonly store: RateLimitStore;
  private readonly keys: [string, string];
  private readonly buckets: Record<Unit, BucketSpec>;
  private readonly maxQueue: number;
  private readonly maxWaitMs: number;
  /** Requests asking Redis or waiting for the time it gave them. */
  private waiting = 0;
  /** The latest time Redis gave one of them, on this clock: when the queue will have drained. */
  private lastSlotAt = 0;
  /** Units Redis has not been told about yet (negative: given back). */
  private readonly charges: Amounts = { requests: 0, tokens: 0 };
  /** Per bucket, the time (this clock) before which the provider's headers say it must not be full. */
  private readonly holdUntil: Amounts = { requests: 0, tokens: 0 };
  /** Milliseconds until each shared bucket is full, as last seen, and when. */
  private seen = { requests: 0, tokens: 0, at: 0 };
  private fallback: Fallback | undefined;
  /** Reservations granted by a local share, and by which. */
  private readonly locals = new WeakMap<Reservation, LocalLimiter>();

  constructor(options: SharedLimiterOptions) {
    this.options = options;
    this.store = options.store;
    this.keys = options.store.keys(options.name);
    this.buckets = bucketSpecs(options.limits);
    this.maxQueue = options.maxQueue ?? 100;
    this.maxWaitMs = options.maxWaitMs ?? 10_000;
  }

  queueDepth(): number {
    return this.waiting + (this.fallback?.limiter.queueDepth() ?? 0);
  }

  async acquire(options: AcquireOptions): Promise<Reservation> {
    checkTokens('tokens', options.tokens);
    const { signal } = options;
    if (signal?.aborted) return this.refuse('aborted', signal.reason);
    this.handOverIfBack();
    if (this.store.degraded) return this.acquireLocally(options);
    const started = Date.now();
    if (this.waiting >= this.maxQueue) return this.refuse('queue_full', new LimiterError('queue_full', Math.max(0, this.lastSlotAt - started)));
    this.waiting++;
    let admitted = false;
    try {
      const longest = Math.max(0, Math.min(this.maxWaitMs, (options.deadlineMs ?? Infinity) - started));
      let reply;
      try {
        reply = await this.send({ requests: 1, tokens: options.tokens }, longest);
      } catch {
        // The store is degraded now: this request and the next go to the local share.
        return await this.acquireLocally(options);
      }
      if (!reply.admitted) return await this.refuse('queue_timeout', new LimiterError('queue_timeout', reply.waitMs));
      admitted = true;
      this.lastSlotAt = Math.max(this.lastSlotAt, Date.now() + reply.waitMs);
      if (reply.waitMs > 0 || signal?.aborted) await sleep(reply.waitMs, undefined, signal ? { signal } : {});
    } catch (error) {
      if (!admitted) throw error;
      // Aborted while waiting for its time: the units go back, for the next admission to apply.
      this.charges.requests -= 1;
      this.charges.tokens -= options.tokens;
      this.options.onWait?.(Date.now() - started, 'aborted');
      throw signal?.reason ?? error;
    } finally {
      this.waiting--;
    }
    const waitedMs = Date.now() - started;
    this.options.onWait?.(waitedMs, 'admitted');
    return { tokens: options.tokens, waitedMs };
  }

  settle(reservation: Reservation, actualTokens: number): void {
    checkTokens('actualTokens', actualTokens);
    const local = this.locals.get(reservation);
    if (local !== undefined && local === this.fallback?.limiter) return local.settle(reservation, actualTokens);
    // Granted by Redis, or by a local share already handed over (which charged its estimate): Redis corrects it.
    this.charges.tokens += actualTokens - reservation.tokens;
    (reservation as { tokens: number }).tokens = actualTokens;
  }

  observe(headers: HeaderReader): void {
    this.handOverIfBack();
    if (this.store.degraded) return this.local().limiter.observe(headers);
    const now = Date.now();
    const report = readProviderReport(headers, now);
    const holds: [Unit, Hold][] = [];
    for (const unit of UNITS) {
      const { per, capacity } = this.buckets[unit];
      const hold = per === 0 ? undefined : holdFor(unit, report, 1 / per);
      if (hold === undefined || hold.ceiling >= capacity) continue;
      this.holdUntil[unit] = Math.max(this.holdUntil[unit], now + (capacity - hold.ceiling) * per);
      holds.push([unit, hold]);
    }
    if (holds.length === 0) return;
    // Other replicas should hold back too, before their next admission rather than after this one's. Only Redis knows
    // whether the bucket held more than the provider has left, so only its answer says whether this held anything back.
    this.send({ requests: 0, tokens: 0 }, -1).then(
      (reply) => {
        for (const [unit, hold] of holds) if (reply.held[unit]) this.options.onHold?.(unit, hold);
      },
      () => undefined,
    );
  }

  /** One ADMIT call carrying the charges and holds gathered so far. Those are dropped if it fails (see the top). */
  private async send(amounts: Amounts, longestWaitMs: number) {
    const now = Date.now();
    const args = (unit: Unit): BucketArgs => ({ ...this.buckets[unit], charge: this.charges[unit], holdMs: Math.max(0, this.holdUntil[unit] - now), amount: amounts[unit] });
    const requests = args('requests');
    const tokens = args('tokens');
    this.charges.requests = this.charges.tokens = 0;
    this.holdUntil.requests = this.holdUntil.tokens = 0;
    const reply = await this.store.admit(this.keys, requests, tokens, longestWaitMs);
    this.seen = { ...reply.aheadMs, at: Date.now() };
    return reply;
  }

  private async acquireLocally(options: AcquireOptions): Promise<Reservation> {
    const { limiter } = this.local();
    const reservation = await limiter.acquire(options);
    this.locals.set(reservation, limiter);
    return reservation;
  }

  /** This outage's local share, started on first use: 1/replicas of each limit, owing its part of what Redis held. */
  private local(): Fallback {
    if (this.fallback !== undefined) return this.fallback;
    const replicas = Math.max(1, this.options.replicas());
    const now = Date.now();
    const seed = { requests: 0, tokens: 0 };
    for (const unit of UNITS) {
      const { per } = this.buckets[unit];
      if (per > 0) seed[unit] = Math.max(0, this.seen[unit] - (now - this.seen.at)) / per / replicas;
    }
    const { onWait, onHold } = this.options;
    const limiter = new LocalLimiter({ limits: this.options.limits, share: replicas, maxQueue: this.maxQueue, maxWaitMs: this.maxWaitMs, ...(onWait ? { onWait } : {}), ...(onHold ? { onHold } : {}) });
    limiter.charge(seed);
    this.fallback = { limiter, outage: this.store.outage, seed, replicas, since: now };
    return this.fallback;
  }

  /** Once the outage of the local share is over: charges Redis what the share took and has not refilled yet. */
  private handOverIfBack(): void {
    const fallback = this.fallback;
    if (fallback === undefined || (this.store.degraded && this.store.outage === fallback.outage)) return;
    this.fallback = undefined;
    const owed = fallback.limiter.owed();
    const elapsed = Date.now() - fallback.since;
    for (const unit of UNITS) {
      const { per } = this.buckets[unit];
      if (per === 0) continue;
      // The seed refills first: what is still owed beyond it is what this replica took during the outage.
      const seedLeft = Math.max(0, fallback.seed[unit] - elapsed / per / fallback.replicas);
      this.charges[unit] += Math.max(0, owed[unit] - seedLeft);
    }
  }

  private refuse(outcome: WaitOutcome, reason: unknown): Promise<never> {
    this.options.onWait?.(0, outcome);
    return Promise.reject(reason);
  }
}
