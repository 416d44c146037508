import { describe, expect, it } from '@jest/globals';
import { BucketRateLimiter, ItemExponentialRateLimiter, MaxOfRateLimiter, defaultControllerRateLimiter, reserveToken } from '../../src/controller/rate-limiter.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const times = <T>(n: number, f: () => T): T[] => Array.from({ length: n }, f);

describe('ItemExponentialRateLimiter', () => {
  it('doubles the delay per failure of a key, from the base', () => {
    const limiter = new ItemExponentialRateLimiter({ baseMs: 5, maxMs: 1_000_000 });
    expect(times(6, () => limiter.when('a'))).toEqual([5, 10, 20, 40, 80, 160]);
    expect(limiter.retries('a')).toBe(6);
  });

  it('keeps keys apart', () => {
    const limiter = new ItemExponentialRateLimiter();
    limiter.when('a');
    limiter.when('a');
    expect(limiter.when('b')).toBe(5);
    expect(limiter.retries('a')).toBe(2);
    expect(limiter.retries('b')).toBe(1);
  });

  it('caps the delay at the maximum, even after very many failures', () => {
    const limiter = new ItemExponentialRateLimiter({ baseMs: 5, maxMs: 1_000_000 });
    const delays = times(2000, () => limiter.when('a'));
    // 5 ms * 2^17 = 655 s is the last delay under the 1000 s cap.
    expect(delays[17]).toBe(655_360);
    expect(delays[18]).toBe(1_000_000);
    expect(delays.at(-1)).toBe(1_000_000);
  });

  it('starts over from the base once the key is forgotten', () => {
    const limiter = new ItemExponentialRateLimiter({ baseMs: 5, maxMs: 1_000_000 });
    times(4, () => limiter.when('a'));
    limiter.forget('a');
    expect(limiter.retries('a')).toBe(0);
    expect(limiter.when('a')).toBe(5);
  });
});

describe('BucketRateLimiter', () => {
  it('lets a burst through at once, then one token per 1/qps, each reservation queued behind the last', () => {
    const clock = manualClock();
    const limiter = new BucketRateLimiter({ qps: 10, burst: 100, now: clock.now });
    expect(times(100, () => limiter.when())).toEqual(times(100, () => 0));
    expect(times(3, () => limiter.when())).toEqual([100, 200, 300]);
  });

  it('refills at qps tokens per second', () => {
    const clock = manualClock();
    const limiter = new BucketRateLimiter({ qps: 10, burst: 100, now: clock.now });
    times(102, () => limiter.when()); // the bucket owes 2 tokens
    clock.advance(1000); // 10 more: 8 available
    expect(times(9, () => limiter.when())).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 100]);
  });

  it('refills no further than the burst', () => {
    const clock = manualClock();
    const limiter = new BucketRateLimiter({ qps: 10, burst: 5, now: clock.now });
    clock.advance(3_600_000);
    expect(times(6, () => limiter.when())).toEqual([0, 0, 0, 0, 0, 100]);
  });

  it('neither counts retries nor forgets: it limits all keys together', () => {
    const clock = manualClock();
    const limiter = new BucketRateLimiter({ qps: 1, burst: 1, now: clock.now });
    expect(limiter.when()).toBe(0);
    limiter.forget();
    expect(limiter.when()).toBe(1000);
    expect(limiter.retries()).toBe(0);
  });
});

describe('reserveToken', () => {
  it('does not drain the bucket when the clock steps backwards', () => {
    const { bucket, delayMs } = reserveToken({ tokens: 3, at: 10_000 }, 5_000, 10, 10);
    expect(delayMs).toBe(0);
    expect(bucket).toEqual({ tokens: 2, at: 10_000 });
  });
});

describe('MaxOfRateLimiter', () => {
  it('waits for the slowest limiter, and every limiter records the attempt', () => {
    const clock = manualClock();
    const perKey = new ItemExponentialRateLimiter({ baseMs: 50, maxMs: 10_000 });
    const bucket = new BucketRateLimiter({ qps: 10, burst: 2, now: clock.now });
    const limiter = new MaxOfRateLimiter(perKey, bucket);
    // per key 50, 100, 200; the bucket 0, 0, 100
    expect(times(3, () => limiter.when('a'))).toEqual([50, 100, 200]);
    // the bucket took three tokens, so a new key waits on it, not on its own (first) failure
    expect(limiter.when('b')).toBe(200);
    expect(limiter.retries('a')).toBe(3);
  });

  it('forgets in every limiter', () => {
    const limiter = new MaxOfRateLimiter(new ItemExponentialRateLimiter({ baseMs: 5, maxMs: 100 }), new ItemExponentialRateLimiter({ baseMs: 7, maxMs: 100 }));
    times(3, () => limiter.when('a'));
    limiter.forget('a');
    expect(limiter.retries('a')).toBe(0);
    expect(limiter.when('a')).toBe(7);
  });
});

describe('defaultControllerRateLimiter', () => {
  it('is 5 ms doubling per key, until 100 retries in a burst make the 10 per second bucket dominate', () => {
    const clock = manualClock();
    const limiter = defaultControllerRateLimiter(clock.now);
    expect(times(3, () => limiter.when('a'))).toEqual([5, 10, 20]);
    Array.from({ length: 97 }, (_, i) => limiter.when(`other-${i}`));
    expect(limiter.when('b')).toBe(100);
  });
});
