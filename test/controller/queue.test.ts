import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { WorkQueue, runWorkers } from '../../src/controller/queue.js';
import { ItemExponentialRateLimiter } from '../../src/controller/rate-limiter.js';

/** Whether a promise settles once pending timers at the current (fake) time and microtasks have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  const mark = () => {
    done = true;
  };
  promise.then(mark, mark);
  await jest.advanceTimersByTimeAsync(0);
  return done;
}

/** Takes every key waiting now, marking each done. */
async function drain<K extends string>(queue: WorkQueue<K>): Promise<K[]> {
  const keys: K[] = [];
  while (queue.len() > 0) {
    const key = (await queue.get())!;
    keys.push(key);
    queue.done(key);
  }
  return keys;
}

const exponential = (baseMs: number) => new ItemExponentialRateLimiter({ baseMs, maxMs: 60_000 });

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

describe('WorkQueue', () => {
  it('hands out keys in order, each waiting key once however often it was added', async () => {
    const queue = new WorkQueue<string>();
    for (const key of ['a', 'b', 'a', 'c', 'b']) queue.add(key);
    expect(queue.len()).toBe(3);
    expect(await drain(queue)).toEqual(['a', 'b', 'c']);
  });

  it('holds back a key added while it is processed, and queues it (once) when done', async () => {
    const queue = new WorkQueue<string>();
    queue.add('a');
    expect(await queue.get()).toBe('a');
    queue.add('a');
    queue.add('a');
    expect(queue.len()).toBe(0); // a second worker cannot get it
    queue.done('a');
    expect(await drain(queue)).toEqual(['a']);
  });

  it('does not re-queue a processed key that was not added again', async () => {
    const queue = new WorkQueue<string>();
    queue.add('a');
    queue.done((await queue.get())!);
    expect(queue.len()).toBe(0);
  });

  it('resolves a waiting get as soon as a key is added', async () => {
    const queue = new WorkQueue<string>();
    const next = queue.get();
    expect(await settled(next)).toBe(false);
    queue.add('a');
    expect(await next).toBe('a');
    expect(queue.len()).toBe(0);
  });

  it('adds delayed keys when their time comes, earliest first', async () => {
    const queue = new WorkQueue<string>();
    queue.addAfter('late', 200);
    queue.addAfter('early', 100);
    queue.addAfter('now', 0);
    expect(await drain(queue)).toEqual(['now']);
    await jest.advanceTimersByTimeAsync(99);
    expect(queue.len()).toBe(0);
    await jest.advanceTimersByTimeAsync(1);
    expect(await drain(queue)).toEqual(['early']);
    await jest.advanceTimersByTimeAsync(100);
    expect(await drain(queue)).toEqual(['late']);
  });

  it('keeps the earliest time when a key is delayed twice', async () => {
    const queue = new WorkQueue<string>();
    queue.addAfter('a', 500);
    queue.addAfter('a', 100);
    queue.addAfter('a', 300);
    await jest.advanceTimersByTimeAsync(100);
    expect(await drain(queue)).toEqual(['a']);
    await jest.advanceTimersByTimeAsync(1000);
    expect(queue.len()).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('delays a rate-limited key by its limiter, longer per failure, from the start once forgotten', async () => {
    const queue = new WorkQueue<string>({ rateLimiter: exponential(100) });
    const waitsFor = async (ms: number) => {
      queue.addRateLimited('a');
      await jest.advanceTimersByTimeAsync(ms - 1);
      const early = queue.len();
      await jest.advanceTimersByTimeAsync(1);
      return { early, keys: await drain(queue) };
    };
    expect(await waitsFor(100)).toEqual({ early: 0, keys: ['a'] });
    expect(await waitsFor(200)).toEqual({ early: 0, keys: ['a'] });
    expect(queue.retries('a')).toBe(2);
    queue.forget('a');
    expect(queue.retries('a')).toBe(0);
    expect(await waitsFor(100)).toEqual({ early: 0, keys: ['a'] });
  });

  it('on shutDown: wakes waiting getters with undefined, drops waiting and delayed keys, ignores new ones', async () => {
    const queue = new WorkQueue<string>();
    const getters = [queue.get(), queue.get()];
    queue.shutDown();
    expect(await Promise.all(getters)).toEqual([undefined, undefined]);

    const other = new WorkQueue<string>();
    other.add('waiting');
    other.addAfter('delayed', 1000);
    other.shutDown();
    expect(jest.getTimerCount()).toBe(0);
    other.add('new');
    other.addAfter('new-delayed', 10);
    other.addRateLimited('new-limited');
    expect(other.len()).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
    expect(await other.get()).toBeUndefined();
  });

  it('shutDownWithDrain resolves once the keys being processed are done', async () => {
    const queue = new WorkQueue<string>();
    queue.add('a');
    queue.add('b');
    const [a, b] = [(await queue.get())!, (await queue.get())!];
    const drained = queue.shutDownWithDrain();
    queue.done(a);
    expect(await settled(drained)).toBe(false);
    queue.done(b);
    expect(await settled(drained)).toBe(true);
    expect(await settled(new WorkQueue<string>().shutDownWithDrain())).toBe(true);
  });
});

describe('WorkQueue timers', () => {
  beforeEach(() => {
    jest.useRealTimers();
  });

  // Counts what keeps the event loop alive: unreferenced timers are not listed.
  const liveTimeouts = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;

  it('do not keep the process alive', () => {
    const queue = new WorkQueue<string>();
    const before = liveTimeouts();
    queue.addAfter('a', 60_000);
    expect(liveTimeouts()).toBe(before);
    // the check itself can fail: a referenced timer is counted
    const control = setTimeout(() => undefined, 60_000);
    expect(liveTimeouts()).toBe(before + 1);
    clearTimeout(control);
    queue.shutDown();
  });
});

describe('runWorkers', () => {
  it('retries a failing key with backoff, reports the error, and forgets the failures once it succeeds', async () => {
    const queue = new WorkQueue<string>({ rateLimiter: exponential(1000) });
    const calls: Array<{ key: string; at: number }> = [];
    const errors: Array<[string, unknown]> = [];
    const start = Date.now();
    const workers = runWorkers(
      queue,
      1,
      async (key) => {
        calls.push({ key, at: Date.now() - start });
        if (calls.length <= 2) throw new Error(`boom ${calls.length}`);
      },
      (key, error) => errors.push([key, error]),
    );
    queue.add('a');
    await jest.advanceTimersByTimeAsync(10_000);
    expect(calls).toEqual([
      { key: 'a', at: 0 },
      { key: 'a', at: 1000 },
      { key: 'a', at: 3000 },
    ]);
    expect(errors.map(([key, error]) => [key, (error as Error).message])).toEqual([
      ['a', 'boom 1'],
      ['a', 'boom 2'],
    ]);
    expect(queue.retries('a')).toBe(0);
    queue.shutDown();
    await workers;
  });

  it('re-queues a key after requeueAfterMs when the handler asks for it', async () => {
    const queue = new WorkQueue<string>();
    const calls: number[] = [];
    const start = Date.now();
    const workers = runWorkers(queue, 1, async () => {
      calls.push(Date.now() - start);
      return calls.length < 3 ? { requeueAfterMs: 5000 } : undefined;
    }, () => undefined);
    queue.add('a');
    await jest.advanceTimersByTimeAsync(60_000);
    expect(calls).toEqual([0, 5000, 10_000]);
    queue.shutDown();
    await workers;
  });

  it('runs up to n keys at once, never one key twice at once, and stops when the queue shuts down', async () => {
    const queue = new WorkQueue<string>();
    let running = 0;
    let most = 0;
    const seen: string[] = [];
    const release: Array<() => void> = [];
    const workers = runWorkers(queue, 3, async (key) => {
      seen.push(key);
      most = Math.max(most, ++running);
      await new Promise<void>((resolve) => release.push(resolve));
      running--;
    }, () => undefined);
    queue.add('a');
    queue.add('b');
    await jest.advanceTimersByTimeAsync(0);
    queue.add('a'); // while a is processed: the idle third worker must not take it
    await jest.advanceTimersByTimeAsync(0);
    expect(seen).toEqual(['a', 'b']);
    queue.add('c');
    queue.add('d');
    await jest.advanceTimersByTimeAsync(0);
    expect(seen).toEqual(['a', 'b', 'c']);
    release.shift()!(); // a is done: d was waiting before a came back
    await jest.advanceTimersByTimeAsync(0);
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    while (release.length > 0) {
      release.shift()!();
      await jest.advanceTimersByTimeAsync(0);
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'a']);
    expect(most).toBe(3);
    expect(await settled(workers)).toBe(false);
    queue.shutDown();
    expect(await settled(workers)).toBe(true);
  });
});
