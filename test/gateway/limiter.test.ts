import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { LimiterError, LocalLimiter, type LimiterOptions, type Reservation, type WaitOutcome } from '../../src/gateway/limiter.js';

/** What became of one `acquire`, and when (fake time, ms since the test started). */
interface Tracked {
  at?: number;
  reservation?: Reservation;
  error?: unknown;
}

function track(promise: Promise<Reservation>): Tracked {
  const tracked: Tracked = {};
  promise.then(
    (reservation) => Object.assign(tracked, { at: Date.now(), reservation }),
    (error: unknown) => Object.assign(tracked, { at: Date.now(), error }),
  );
  return tracked;
}

/** Runs timers due within `ms` and the promise callbacks they release. */
const advance = (ms: number) => jest.advanceTimersByTimeAsync(ms);

function setup(options: Omit<LimiterOptions, 'now'>) {
  const waits: [number, WaitOutcome][] = [];
  const limiter = new LocalLimiter({ onWait: (waited, outcome) => waits.push([waited, outcome]), ...options });
  const acquire = (tokens = 1, more: { signal?: AbortSignal; deadlineMs?: number } = {}) => track(limiter.acquire({ tokens, ...more }));
  return { limiter, acquire, waits };
}

function limiterError(tracked: Tracked): { code: string; retryAfterMs: number } {
  expect(tracked.error).toBeInstanceOf(LimiterError);
  const { code, retryAfterMs } = tracked.error as LimiterError;
  return { code, retryAfterMs };
}

beforeEach(() => {
  jest.useFakeTimers({ now: 0 });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('Limiter, requests per minute', () => {
  it('admits a second\'s worth of requests at once, then paces the rest', async () => {
    const { acquire } = setup({ limits: { requestsPerMinute: 120 } });
    const requests = [acquire(), acquire(), acquire()];
    await advance(0);
    expect(requests.map((r) => r.at)).toEqual([0, 0, undefined]);
    await advance(499);
    expect(requests[2]!.at).toBeUndefined();
    await advance(1);
    expect(requests[2]!.at).toBe(500);
  });

  it('drains a burst at a steady rate, in arrival order: 60 rpm is one request a second', async () => {
    const { limiter } = setup({ limits: { requestsPerMinute: 60 } });
    const order: number[] = [];
    const requests = Array.from({ length: 10 }, (_, i) => track(limiter.acquire({ tokens: 1 }).finally(() => order.push(i))));
    expect(limiter.queueDepth()).toBe(9);
    await advance(10_000);
    expect(requests.map((r) => r.at)).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(limiter.queueDepth()).toBe(0);
  });

  it('reports the time each request waited', async () => {
    const { acquire, waits } = setup({ limits: { requestsPerMinute: 60 } });
    const requests = [acquire(), acquire(), acquire()];
    await advance(2000);
    expect(waits).toEqual([
      [0, 'admitted'],
      [1000, 'admitted'],
      [2000, 'admitted'],
    ]);
    expect(requests.map((r) => r.reservation?.waitedMs)).toEqual([0, 1000, 2000]);
  });
});

describe('Limiter, tokens per minute', () => {
  it('admits while the bucket has the estimated tokens, and holds the next until it refilled enough', async () => {
    // 6000 tpm: 100 tokens a second.
    const { acquire } = setup({ limits: { tokensPerMinute: 6000 } });
    const first = acquire(5000);
    const second = acquire(1500); // 1000 left, 500 short: 5 s
    await advance(4999);
    expect(first.at).toBe(0);
    expect(second.at).toBeUndefined();
    await advance(1);
    expect(second.at).toBe(5000);
  });

  it('admits a request larger than the whole minute\'s allowance alone, on a full bucket', async () => {
    const { acquire } = setup({ limits: { tokensPerMinute: 1000 }, maxWaitMs: 60_000 });
    acquire(400);
    const huge = acquire(5000); // waits for the 400 to refill: 24 s
    await advance(23_999);
    expect(huge.at).toBeUndefined();
    await advance(1);
    expect(huge.at).toBe(24_000);
    // The bucket now owes 4000 tokens: a small request would wait four minutes, beyond maxWaitMs.
    const small = acquire(1);
    await advance(0);
    expect(limiterError(small)).toEqual({ code: 'queue_timeout', retryAfterMs: 240_060 });
  });

  it('keeps FIFO order: a small request does not overtake a large one waiting at the head', async () => {
    const { acquire } = setup({ limits: { tokensPerMinute: 6000 }, maxWaitMs: 60_000 });
    acquire(5000);
    const large = acquire(3000); // 1000 left, 2000 short: 20 s
    const small = acquire(100); // the bucket has 100 now, but the large one is first; then 1 s after it
    await advance(20_000);
    expect(large.at).toBe(20_000);
    expect(small.at).toBeUndefined();
    await advance(1000);
    expect(small.at).toBe(21_000);
  });

  it('settles to the actual usage: a refund admits waiters at once', async () => {
    const { acquire, limiter } = setup({ limits: { tokensPerMinute: 6000 } });
    const first = acquire(6000);
    const second = acquire(600); // 6 s
    await advance(0);
    limiter.settle(first.reservation!, 1000);
    expect(first.reservation!.tokens).toBe(1000);
    await advance(0);
    expect(second.at).toBe(0);
    // 6000 - 1000 - 600 = 4400 left; settling the first again to the same count gives nothing back twice.
    limiter.settle(first.reservation!, 1000);
    const third = acquire(4400);
    const fourth = acquire(100);
    await advance(0);
    expect(third.at).toBe(0);
    expect(fourth.at).toBeUndefined();
  });

  it('settles to the actual usage: an overrun delays the waiters, who time out at their deadline', async () => {
    const { acquire, limiter, waits } = setup({ limits: { tokensPerMinute: 6000 } });
    const first = acquire(1000);
    const second = acquire(5500); // 5000 left, 500 short: 5 s, within the 10 s maximum
    await advance(0);
    limiter.settle(first.reservation!, 6000); // 5000 more than estimated: now 5500 short, 55 s
    await advance(9999);
    expect(second.at).toBeUndefined();
    await advance(1);
    expect(second.at).toBe(10_000);
    // By now 1000 tokens came back: 4500 short.
    expect(limiterError(second)).toEqual({ code: 'queue_timeout', retryAfterMs: 45_000 });
    expect(waits.at(-1)).toEqual([10_000, 'queue_timeout']);
    expect(limiter.queueDepth()).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('Limiter, queue bounds', () => {
  it('refuses a request when the queue is full, saying when it will have drained', async () => {
    const { acquire, limiter, waits } = setup({ limits: { requestsPerMinute: 60 }, maxQueue: 2 });
    const requests = [acquire(), acquire(), acquire()];
    const refused = acquire();
    await advance(0);
    expect(limiter.queueDepth()).toBe(2);
    expect(limiterError(refused)).toEqual({ code: 'queue_full', retryAfterMs: 3000 });
    expect(waits).toEqual([
      [0, 'admitted'],
      [0, 'queue_full'],
    ]);
    await advance(2000);
    expect(requests.map((r) => r.at)).toEqual([0, 1000, 2000]);
  });

  it('refuses at once a request the queue ahead cannot admit within maxWaitMs', async () => {
    const { acquire, limiter } = setup({ limits: { requestsPerMinute: 60 }, maxWaitMs: 2500 });
    const requests = [acquire(), acquire(), acquire()]; // admitted at 0, 1000, 2000
    const late = acquire(); // would be admitted at 3000
    await advance(0);
    expect(limiterError(late)).toEqual({ code: 'queue_timeout', retryAfterMs: 3000 });
    expect(limiter.queueDepth()).toBe(2);
    await advance(2000);
    expect(requests.map((r) => r.at)).toEqual([0, 1000, 2000]);
  });

  it('refuses at once a request that cannot be admitted before its own deadline', async () => {
    const { acquire } = setup({ limits: { requestsPerMinute: 60 } });
    acquire();
    const hurried = acquire(1, { deadlineMs: 999 });
    const patient = acquire(1, { deadlineMs: 2000 });
    await advance(0);
    expect(limiterError(hurried)).toEqual({ code: 'queue_timeout', retryAfterMs: 1000 });
    await advance(1000);
    expect(patient.at).toBe(1000);
  });
});

describe('Limiter, abort and timers', () => {
  it('removes an aborted waiter: it rejects with the abort reason and the ones behind move up', async () => {
    const { acquire, limiter, waits } = setup({ limits: { requestsPerMinute: 60 } });
    const controller = new AbortController();
    const [, a, b, c] = [acquire(), acquire(), acquire(1, { signal: controller.signal }), acquire()];
    await advance(500);
    controller.abort();
    await advance(0);
    expect(b!.error).toBe(controller.signal.reason);
    expect(b!.at).toBe(500);
    expect(limiter.queueDepth()).toBe(2);
    expect(waits).toContainEqual([500, 'aborted']);
    await advance(1500);
    expect([a!.at, c!.at]).toEqual([1000, 2000]);
  });

  it('refuses a request whose signal was already aborted, without queueing it', async () => {
    const { acquire, limiter } = setup({ limits: { requestsPerMinute: 60 } });
    acquire();
    const aborted = acquire(1, { signal: AbortSignal.abort('gone') });
    await advance(0);
    expect(aborted.error).toBe('gone');
    expect(limiter.queueDepth()).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('keeps one timer for the whole queue, and none once every waiter has left', async () => {
    const { acquire, limiter } = setup({ limits: { requestsPerMinute: 60 } });
    acquire();
    const controllers = Array.from({ length: 5 }, () => new AbortController());
    const waiting = controllers.map((controller) => acquire(1, { signal: controller.signal }));
    expect(jest.getTimerCount()).toBe(1);
    controllers[0]!.abort(); // the head
    controllers[3]!.abort();
    expect(jest.getTimerCount()).toBe(1);
    for (const controller of controllers) controller.abort();
    await advance(0);
    expect(limiter.queueDepth()).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
    expect(waiting.every((w) => w.error !== undefined)).toBe(true);
  });

  it('leaves no timer once the queue has drained', async () => {
    const { acquire } = setup({ limits: { requestsPerMinute: 60, tokensPerMinute: 60_000 } });
    const requests = [acquire(100), acquire(100), acquire(100)];
    await advance(2000);
    expect(requests.map((r) => r.at)).toEqual([0, 1000, 2000]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('admits everything at once without limits', async () => {
    const { acquire, limiter } = setup({ limits: {} });
    const requests = Array.from({ length: 1000 }, () => acquire(1_000_000));
    await advance(0);
    expect(requests.every((r) => r.at === 0)).toBe(true);
    limiter.settle(requests[0]!.reservation!, 5);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('rejects a token estimate that is not a finite count', async () => {
    const { limiter } = setup({ limits: { tokensPerMinute: 1000 } });
    await expect(limiter.acquire({ tokens: Number.NaN })).rejects.toThrow(RangeError);
    await expect(limiter.acquire({ tokens: -1 })).rejects.toThrow(RangeError);
    const reservation = await limiter.acquire({ tokens: 10 });
    expect(() => limiter.settle(reservation, Number.NaN)).toThrow(RangeError);
  });
});

const headers = (values: Record<string, string>) => ({ get: (name: string) => values[name] ?? null });

describe('Limiter, held back by the provider\'s headers', () => {
  it('admits no more than the provider says it has left, then paces at its own rate', async () => {
    const { acquire, limiter } = setup({ limits: { requestsPerMinute: 600 } }); // 10 a second, 10 at once
    limiter.observe(headers({ 'x-ratelimit-remaining-requests': '2' }));
    const requests = Array.from({ length: 4 }, () => acquire());
    await advance(0);
    expect(requests.map((r) => r.at)).toEqual([0, 0, undefined, undefined]);
    await advance(200);
    expect(requests.map((r) => r.at)).toEqual([0, 0, 100, 200]);
  });

  it('admits nothing until the provider\'s retry-after, and reports the hold', async () => {
    const holds: [string, string, number][] = [];
    const limiter = new LocalLimiter({ limits: { requestsPerMinute: 60, tokensPerMinute: 6000 }, onHold: (unit, hold) => holds.push([unit, hold.reason, hold.ceiling]) });
    limiter.observe(headers({ 'retry-after': '3', 'x-ratelimit-remaining-requests': '0' }));
    expect(holds).toEqual([
      ['requests', 'retry_after', -3],
      ['tokens', 'retry_after', -300],
    ]);
    // Empty at 3 s, then one request's worth of refill: 4 s.
    const request = track(limiter.acquire({ tokens: 1 }));
    await advance(3999);
    expect(request.at).toBeUndefined();
    await advance(1);
    expect(request.at).toBe(4000);
  });

  it('holds a waiter already in the queue back too', async () => {
    const { acquire, limiter } = setup({ limits: { requestsPerMinute: 60 } });
    acquire();
    const second = acquire(); // due at 1 s
    limiter.observe(headers({ 'retry-after-ms': '2500' }));
    await advance(3000);
    expect(second.at).toBeUndefined();
    await advance(500);
    expect(second.at).toBe(3500);
  });

  it('never raises the limiter above its own limit, and reports no hold, when the provider has more left', async () => {
    const holds: string[] = [];
    const { acquire, limiter } = setup({ limits: { requestsPerMinute: 60 }, onHold: (unit) => holds.push(unit) });
    acquire();
    limiter.observe(headers({ 'x-ratelimit-remaining-requests': '5000', 'x-ratelimit-limit-requests': '5000', 'x-ratelimit-reset-requests': '12ms' }));
    const second = acquire();
    await advance(999);
    expect(second.at).toBeUndefined();
    await advance(1);
    expect(second.at).toBe(1000);
    expect(holds).toEqual([]);
  });

  it('ignores headers about a bucket it does not limit', async () => {
    const { acquire, limiter } = setup({ limits: { requestsPerMinute: 60 } });
    limiter.observe(headers({ 'x-ratelimit-remaining-tokens': '0' }));
    const request = acquire(1000);
    await advance(0);
    expect(request.at).toBe(0);
  });
});

describe('Limiter, a share of the limits', () => {
  it('enforces 1/share of each limit, and of what the provider says is left', async () => {
    const { acquire, limiter } = setup({ limits: { requestsPerMinute: 1200 }, share: 2 }); // 10 a second each, 10 at once
    const burst = Array.from({ length: 11 }, () => acquire());
    await advance(0);
    expect(burst.filter((r) => r.at === 0)).toHaveLength(10);
    await advance(100);
    expect(burst[10]!.at).toBe(100);
    // The provider has 8 left: this replica's part is 4.
    await advance(1000);
    limiter.observe(headers({ 'x-ratelimit-remaining-requests': '8' }));
    const more = Array.from({ length: 5 }, () => acquire());
    await advance(0);
    expect(more.filter((r) => r.at !== undefined)).toHaveLength(4);
  });

  it('owes what it was charged and what its queue holds, refilling as it goes', async () => {
    const limiter = new LocalLimiter({ limits: { requestsPerMinute: 60, tokensPerMinute: 6000 } });
    limiter.charge({ requests: 1, tokens: 3000 });
    expect(limiter.owed()).toEqual({ requests: 1, tokens: 3000 });
    const waiting = track(limiter.acquire({ tokens: 500 })); // the request bucket is empty: it queues
    expect(limiter.owed()).toEqual({ requests: 2, tokens: 3500 });
    await advance(1000);
    expect(waiting.at).toBe(1000);
    // 1 s refilled one request and 100 tokens; the waiter took one and 500.
    expect(limiter.owed()).toEqual({ requests: 1, tokens: 3400 });
  });

  it('owes nothing for a bucket without a limit', () => {
    const limiter = new LocalLimiter({ limits: { requestsPerMinute: 60 } });
    limiter.charge({ requests: 0, tokens: 10_000 });
    expect(limiter.owed()).toEqual({ requests: 0, tokens: 0 });
  });
});
