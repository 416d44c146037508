import { describe, expect, it } from '@jest/globals';
import { Coalescer, coalescingKey } from '../../src/gateway/coalesce.js';
import type { ChatRequest } from '../../src/gateway/types.js';

/**
 * A promise settled from outside, so a test decides when the "upstream call" ends. Rejecting one that no caller
 * awaits (because a faulty coalescer never called it) must fail the test, not crash the runner with an unhandled
 * rejection, hence the no-op handler; callers still see the rejection.
 */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** An upstream call that counts its runs and ends when the test says. */
function upstream<T>() {
  let calls = 0;
  let pending = deferred<T>();
  return {
    fn: () => {
      calls += 1;
      return pending.promise;
    },
    get calls() {
      return calls;
    },
    /** Settles the current call; the next one gets a fresh promise. */
    settle(how: { value: T } | { error: unknown }) {
      if ('value' in how) pending.resolve(how.value);
      else pending.reject(how.error);
      pending = deferred<T>();
    },
  };
}

describe('Coalescer', () => {
  it('runs ten identical concurrent requests once, and gives every caller the answer', async () => {
    const coalescer = new Coalescer<string>();
    const call = upstream<string>();
    const results = Array.from({ length: 10 }, () => coalescer.run('k', call.fn));
    call.settle({ value: 'answer' });
    const settled = await Promise.all(results);
    expect(call.calls).toBe(1);
    expect(settled.map((r) => r.value)).toEqual(Array(10).fill('answer'));
    expect(settled.map((r) => r.shared)).toEqual([false, ...Array(9).fill(true)]);
  });

  it('gives every caller the same error when the request fails', async () => {
    const coalescer = new Coalescer<string>();
    const call = upstream<string>();
    const results = Array.from({ length: 3 }, () => coalescer.run('k', call.fn));
    const error = new Error('upstream 500');
    call.settle({ error });
    const settled = await Promise.allSettled(results);
    expect(call.calls).toBe(1);
    expect(settled).toEqual(Array(3).fill({ status: 'rejected', reason: error }));
    for (const result of settled) expect((result as PromiseRejectedResult).reason).toBe(error);
  });

  it('shares a synchronous throw of fn as a rejection', async () => {
    const coalescer = new Coalescer<string>();
    const error = new Error('bad request');
    let calls = 0;
    const fn = (): Promise<string> => {
      calls += 1;
      throw error;
    };
    const results = await Promise.allSettled([coalescer.run('k', fn), coalescer.run('k', fn)]);
    expect(calls).toBe(1);
    expect(results).toEqual([{ status: 'rejected', reason: error }, { status: 'rejected', reason: error }]);
    // And the entry is gone: the next request runs.
    await expect(coalescer.run('k', async () => 'ok')).resolves.toEqual({ value: 'ok', shared: false });
  });

  it('caches nothing: a request after the first settled runs again, after success or failure', async () => {
    const coalescer = new Coalescer<string>();
    const call = upstream<string>();
    const first = coalescer.run('k', call.fn);
    call.settle({ value: 'one' });
    // Even the first caller's own next request, made as soon as it has its answer, is not served from the old one.
    const second = first.then(() => coalescer.run('k', call.fn));
    await first;
    call.settle({ error: new Error('down') });
    await expect(second).rejects.toThrow('down');
    const third = coalescer.run('k', call.fn);
    call.settle({ value: 'three' });
    await expect(third).resolves.toEqual({ value: 'three', shared: false });
    expect(call.calls).toBe(3);
  });

  it('never shares between different keys', async () => {
    const coalescer = new Coalescer<string>();
    const a = upstream<string>();
    const b = upstream<string>();
    const results = [coalescer.run('a', a.fn), coalescer.run('b', b.fn)];
    a.settle({ value: 'for a' });
    b.settle({ value: 'for b' });
    expect(await Promise.all(results)).toEqual([
      { value: 'for a', shared: false },
      { value: 'for b', shared: false },
    ]);
  });
});

describe('coalescingKey', () => {
  const body = (fields: Partial<ChatRequest> = {}): ChatRequest => ({
    model: 'chat',
    temperature: 0,
    messages: [{ role: 'user', content: 'What is 2 + 2?' }],
    ...fields,
  });
  const key = (fields: Partial<ChatRequest> = {}, client = 'web', variant = 'baseline') => coalescingKey({ client, body: body(fields), variant });

  it('keys a deterministic request by client, variant and body', () => {
    expect(key()).toBeDefined();
    expect(key()).toBe(key());
    expect(key({ n: 1 })).toBeDefined();
  });

  it('gives no key to requests that may rightly differ: unset or non-zero temperature, several choices', () => {
    expect(key({ temperature: undefined })).toBeUndefined();
    expect(key({ temperature: 0.7 })).toBeUndefined();
    expect(key({ n: 2 })).toBeUndefined();
  });

  it('gives no key to a streaming request, even with an idempotency key', () => {
    expect(key({ stream: true })).toBeUndefined();
    expect(coalescingKey({ client: 'web', body: body({ stream: true }), variant: 'baseline', idempotencyKey: 'abc' })).toBeUndefined();
  });

  it('ignores key order, at every depth', () => {
    const reordered: ChatRequest = { messages: [{ content: 'What is 2 + 2?', role: 'user' }], temperature: 0, model: 'chat' };
    expect(coalescingKey({ client: 'web', body: reordered, variant: 'baseline' })).toBe(key());
  });

  it('tells apart different bodies, clients and variants', () => {
    const keys = [
      key(),
      key({ messages: [{ role: 'user', content: 'What is 2 + 3?' }] }),
      key({ max_tokens: 10 }),
      key({}, 'batch'),
      key({}, 'web', 'new-model'),
      // A `__proto__` key is data in a parsed body, and must not vanish in normalisation.
      coalescingKey({ client: 'web', body: JSON.parse('{"model":"chat","temperature":0,"messages":[{"role":"user","content":"What is 2 + 2?"}],"__proto__":{"x":1}}') as ChatRequest, variant: 'baseline' }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keys by client and idempotency key alone when one is given, whatever the body', () => {
    const withKey = (client: string, fields: Partial<ChatRequest>) => coalescingKey({ client, body: body(fields), variant: 'baseline', idempotencyKey: 'order-42' });
    expect(withKey('web', { temperature: 1 })).toBeDefined();
    expect(withKey('web', { temperature: 1 })).toBe(withKey('web', { temperature: 0.2, max_tokens: 5 }));
    expect(withKey('web', {})).not.toBe(withKey('batch', {}));
    expect(withKey('web', {})).not.toBe(key());
  });
});
