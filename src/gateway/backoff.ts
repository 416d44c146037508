/**
 * How long to wait before trying the same provider again, and when not to wait at all: exponential backoff with full
 * jitter, or exactly the provider's `Retry-After` when it sent one. A wait that would outlast the request's remaining
 * time, or that the provider wants longer than `maxDelayMs`, is not taken: the next step of the fallback chain is.
 *
 * Whether the error class may be retried (`POLICIES`) and whether the retry budget allows it are the caller's checks.
 */
import type { GatewayConfig } from '../api/gateway-config.js';

export type RetryPolicy = Pick<GatewayConfig['retry'], 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs'>;

/**
 * 2^30 ms is twelve days, past any `maxDelayMs` the schema allows for a base of 1 ms or more. Capping the exponent
 * also keeps a base of 0 from becoming `0 * Infinity = NaN` after a thousand attempts.
 */
const MAX_EXPONENT = 30;

/** The largest backoff after attempt `attempt` (0-based) failed: `min(maxDelayMs, baseDelayMs * 2^attempt)`. */
export function backoffCeiling(attempt: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>): number {
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(attempt, MAX_EXPONENT));
}

/**
 * Full jitter: uniform in [0, ceiling). Clients that failed together then retry spread over the whole interval
 * instead of in lockstep, which is what turns one 429 into a herd of them.
 */
export function fullJitter(attempt: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  return random() * backoffCeiling(attempt, policy);
}

/** Why not to wait: a metric label and a log field. */
export type FailoverReason =
  /** `maxAttempts` attempts were made on this provider. */
  | 'attempts_exhausted'
  /** The provider asked for a longer pause than `maxDelayMs`: the next provider will answer sooner. */
  | 'retry_after_too_long'
  /** Waiting would leave no time for the attempt itself. */
  | 'deadline';

export type RetryDecision = { wait: number } | { failover: FailoverReason };

export interface RetryInput {
  /** 0-based index of the attempt on this provider that just failed: 0 after the first try. */
  attempt: number;
  /** The provider's `retry-after-ms` or `retry-after`, when it sent one (see `retryAfterMs` in errors.ts). */
  retryAfterMs?: number | undefined;
  /** Time left of the request's total timeout. */
  remainingMs: number;
  policy: RetryPolicy;
  /** Uniform in [0, 1); injected for tests. */
  random?: () => number;
}

export function retryDelay({ attempt, retryAfterMs, remainingMs, policy, random = Math.random }: RetryInput): RetryDecision {
  if (attempt + 1 >= policy.maxAttempts) return { failover: 'attempts_exhausted' };
  let wait: number;
  if (retryAfterMs === undefined) {
    wait = fullJitter(attempt, policy, random);
  } else {
    // Exactly what the provider asked for: retrying sooner earns another 429 and burns an attempt.
    if (retryAfterMs > policy.maxDelayMs) return { failover: 'retry_after_too_long' };
    wait = retryAfterMs;
  }
  if (wait >= remainingMs) return { failover: 'deadline' };
  return { wait };
}
