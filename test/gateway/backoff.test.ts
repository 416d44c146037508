import { describe, expect, it } from '@jest/globals';
import { backoffCeiling, fullJitter, retryDelay, type RetryPolicy } from '../../src/gateway/backoff.js';

const policy: RetryPolicy = { maxAttempts: 5, baseDelayMs: 250, maxDelayMs: 8000 };

/** A seeded uniform source (mulberry32), so that the distribution checks are the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('backoffCeiling', () => {
  it('doubles from the base per attempt and stops at maxDelayMs', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((attempt) => backoffCeiling(attempt, policy))).toEqual([250, 500, 1000, 2000, 4000, 8000, 8000]);
  });

  it('stays at the cap for absurd attempt numbers, and at 0 for a zero base rather than NaN', () => {
    expect(backoffCeiling(5000, policy)).toBe(8000);
    expect(backoffCeiling(5000, { baseDelayMs: 0, maxDelayMs: 8000 })).toBe(0);
  });
});

describe('fullJitter', () => {
  it('spreads delays uniformly over [0, ceiling): never above the ceiling, reaching both ends', () => {
    const random = seeded(42);
    const delays = Array.from({ length: 10_000 }, () => fullJitter(3, policy, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(2000);
    expect(Math.min(...delays)).toBeLessThan(20);
    expect(Math.max(...delays)).toBeGreaterThan(1980);
    const mean = delays.reduce((sum, delay) => sum + delay, 0) / delays.length;
    expect(mean).toBeGreaterThan(950);
    expect(mean).toBeLessThan(1050);
  });

  it('is capped by maxDelayMs however many attempts failed', () => {
    const random = seeded(7);
    const delays = Array.from({ length: 1000 }, () => fullJitter(40, policy, random));
    expect(Math.max(...delays)).toBeLessThan(8000);
    expect(Math.max(...delays)).toBeGreaterThan(7900);
  });
});

describe('retryDelay', () => {
  const remainingMs = 60_000;

  it('waits a jittered share of the exponential ceiling when the provider gave no Retry-After', () => {
    expect(retryDelay({ attempt: 0, remainingMs, policy, random: () => 0.5 })).toEqual({ wait: 125 });
    expect(retryDelay({ attempt: 2, remainingMs, policy, random: () => 0.5 })).toEqual({ wait: 500 });
  });

  it('waits exactly the Retry-After, never a jittered share of it', () => {
    expect(retryDelay({ attempt: 0, retryAfterMs: 3000, remainingMs, policy, random: () => 0 })).toEqual({ wait: 3000 });
    expect(retryDelay({ attempt: 0, retryAfterMs: 0, remainingMs, policy, random: () => 0.9 })).toEqual({ wait: 0 });
  });

  it('waits a Retry-After of exactly maxDelayMs, and fails over at once when the provider asks for longer', () => {
    expect(retryDelay({ attempt: 0, retryAfterMs: 8000, remainingMs, policy })).toEqual({ wait: 8000 });
    expect(retryDelay({ attempt: 0, retryAfterMs: 8001, remainingMs, policy })).toEqual({ failover: 'retry_after_too_long' });
  });

  it('fails over when the Retry-After would use up the time the request has left', () => {
    expect(retryDelay({ attempt: 0, retryAfterMs: 5000, remainingMs: 5001, policy })).toEqual({ wait: 5000 });
    expect(retryDelay({ attempt: 0, retryAfterMs: 5000, remainingMs: 5000, policy })).toEqual({ failover: 'deadline' });
    expect(retryDelay({ attempt: 0, retryAfterMs: 5000, remainingMs: 1200, policy })).toEqual({ failover: 'deadline' });
  });

  it('fails over when the jittered backoff would use up the time the request has left', () => {
    // Attempt 3: a ceiling of 2000 ms.
    expect(retryDelay({ attempt: 3, remainingMs: 1000, policy, random: () => 0.5 })).toEqual({ failover: 'deadline' });
    expect(retryDelay({ attempt: 3, remainingMs: 1000, policy, random: () => 0.25 })).toEqual({ wait: 500 });
  });

  it('fails over once maxAttempts attempts were made, the first included', () => {
    expect(retryDelay({ attempt: 3, remainingMs, policy, random: () => 0 })).toEqual({ wait: 0 });
    expect(retryDelay({ attempt: 4, remainingMs, policy, random: () => 0 })).toEqual({ failover: 'attempts_exhausted' });
    expect(retryDelay({ attempt: 0, retryAfterMs: 10, remainingMs, policy: { ...policy, maxAttempts: 1 } })).toEqual({ failover: 'attempts_exhausted' });
  });
});
