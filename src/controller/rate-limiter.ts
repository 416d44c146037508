/**
 * Work-queue rate limiters with client-go's semantics (k8s.io/client-go/util/workqueue): a per-key exponential
 * backoff, an overall token bucket, and the maximum of several. All delays are milliseconds.
 */
import { exponentialDelay } from './backoff.js';

export interface RateLimiter {
  /** How long `key` should wait before it is processed again. Records the attempt: calling it is not free. */
  when(key: string): number;
  /** Stop tracking `key` (it succeeded). Does not give back tokens already taken from a bucket. */
  forget(key: string): void;
  /** How many times `key` has been rate-limited since it was last forgotten. */
  retries(key: string): number;
}

/** Per-key failures: `baseMs * 2^failures`, capped at `maxMs`. */
export class ItemExponentialRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor({ baseMs = 5, maxMs = 1_000_000 }: { baseMs?: number; maxMs?: number } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    return exponentialDelay(this.baseMs, this.maxMs, failures);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

export interface Bucket {
  /** Tokens available; negative when reservations are queued ahead of the refill. */
  tokens: number;
  /** When `tokens` was computed (ms). */
  at: number;
}

/**
 * Takes one token at `now` (golang.org/x/time/rate's Reserve): refills `qps` tokens per second up to `burst`, and when
 * the bucket is empty the token is reserved from the future, so the caller waits until it would have been refilled.
 */
export function reserveToken(bucket: Bucket, now: number, qps: number, burst: number): { bucket: Bucket; delayMs: number } {
  // A clock that steps backwards must not drain the bucket.
  const elapsed = Math.max(0, now - bucket.at);
  const tokens = Math.min(burst, bucket.tokens + (elapsed * qps) / 1000) - 1;
  return { bucket: { tokens, at: Math.max(now, bucket.at) }, delayMs: tokens >= 0 ? 0 : (-tokens * 1000) / qps };
}

/** One token bucket shared by all keys: bounds the overall retry rate, whatever the keys. */
export class BucketRateLimiter implements RateLimiter {
  private bucket: Bucket;
  private readonly qps: number;
  private readonly burst: number;
  private readonly now: () => number;

  constructor({ qps = 10, burst = 100, now = Date.now }: { qps?: number; burst?: number; now?: () => number } = {}) {
    this.qps = qps;
    this.burst = burst;
    this.now = now;
    this.bucket = { tokens: burst, at: now() };
  }

  when(): number {
    const { bucket, delayMs } = reserveToken(this.bucket, this.now(), this.qps, this.burst);
    this.bucket = bucket;
    return delayMs;
  }

  forget(): void {}

  retries(): number {
    return 0;
  }
}

/** The longest delay of several limiters. Every limiter is asked, because asking is what records the attempt. */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: readonly RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string): number {
    return Math.max(0, ...this.limiters.map((limiter) => limiter.when(key)));
  }

  forget(key: string): void {
    for (const limiter of this.limiters) limiter.forget(key);
  }

  retries(key: string): number {
    return Math.max(0, ...this.limiters.map((limiter) => limiter.retries(key)));
  }
}

/** client-go's DefaultControllerRateLimiter: 5 ms doubling to 1000 s per key, and 10 per second (burst 100) overall. */
export function defaultControllerRateLimiter(now: () => number = Date.now): RateLimiter {
  return new MaxOfRateLimiter(new ItemExponentialRateLimiter({ baseMs: 5, maxMs: 1_000_000 }), new BucketRateLimiter({ qps: 10, burst: 100, now }));
}
