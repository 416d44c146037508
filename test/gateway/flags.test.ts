import { describe, expect, it } from '@jest/globals';
import { compileEnvironment } from '../../src/api/compile.js';
import type { CompiledFlag } from '../../src/api/gateway-config.js';
import { API_VERSION, KIND } from '../../src/api/group.js';
import { LLMRoute, type LLMRouteInput } from '../../src/api/schema.js';
import { applyFlags, bucket, flagsHeader, inFlag, murmur3, selectFlags, variantLabel, type FlagRequest } from '../../src/gateway/flags.js';

type ModelInput = LLMRouteInput['spec']['models'][number];
type FlagInput = NonNullable<LLMRouteInput['spec']['flags']>[number];

const USERS = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

const share = (flag: Pick<CompiledFlag, 'name' | 'percent'>, keys: readonly string[] = USERS) => keys.filter((key) => inFlag(flag, key)).length / keys.length;

/** The first of `user-0`, `user-1`, … that `accept` takes: the tests need callers on a known side of a flag. */
function findKey(accept: (key: string) => boolean, prefix = 'user'): string {
  for (let i = 0; i < 1_000_000; i++) if (accept(`${prefix}-${i}`)) return `${prefix}-${i}`;
  throw new Error('no key found');
}

/** A route with one model and some flags, compiled the way the controller compiles it. */
function compiled(model: ModelInput, flags: FlagInput[] = []) {
  const route = LLMRoute.parse({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'flags', namespace: 'test' },
    spec: {
      providers: [
        { name: 'openai', type: 'openai' },
        { name: 'anthropic', type: 'anthropic' },
        { name: 'vllm', type: 'openai-compatible', baseURL: 'http://vllm:8000/v1' },
      ],
      models: [model],
      auth: 'none',
      flags,
      environments: [{ name: 'prod' }],
    },
  });
  const config = compileEnvironment(route, 'prod');
  return { model: config.models[0]!, flags: config.flags };
}

const chat: ModelInput = {
  name: 'chat',
  pin: 'gpt-4o-2024-08-06',
  maxInputTokens: 100_000,
  maxOutputTokens: 4096,
  fallback: [{ provider: 'openai' }, { provider: 'anthropic', model: 'claude-sonnet-4-20250514' }, { provider: 'vllm' }],
};

const flag = (name: string, set: NonNullable<FlagInput['set']['models']>[string], percent = 100): FlagInput => ({ name, percent, set: { models: { chat: set } } });

describe('murmur3', () => {
  it('matches the published MurmurHash3 x86_32 test vectors, so other tools can compute the same buckets', () => {
    expect(murmur3('')).toBe(0);
    expect(murmur3('', 1)).toBe(0x514e28b7);
    expect(murmur3('', 0xffffffff)).toBe(0x81f16f39);
    expect(murmur3('\u0000\u0000\u0000')).toBe(0x85f0b427);
    expect(murmur3('abc')).toBe(0xb3dd93fa);
    expect(murmur3('hello')).toBe(0x248bfa47);
    expect(murmur3('hello, world')).toBe(0x149bbb7f);
    expect(murmur3('The quick brown fox jumps over the lazy dog.')).toBe(0xd5c48bfc);
    // Two-byte UTF-8: the input is hashed as UTF-8 bytes, not UTF-16 code units.
    expect(murmur3('ππππππππ', 0x9747b28c)).toBe(0xd58063c1);
  });

  it('hashes keys longer than its scratch buffer whole, including what lies past it', () => {
    const long = 'x'.repeat(3000);
    expect(murmur3(`${long}a`)).not.toBe(murmur3(`${long}b`));
    expect(murmur3(`${long}a`)).toBe(murmur3(`${long}a`));
    // A multi-byte character across the 1024-byte boundary is neither split nor dropped.
    expect(murmur3(`${'x'.repeat(1023)}π`)).not.toBe(murmur3(`${'x'.repeat(1023)}σ`));
  });
});

describe('bucket and inFlag', () => {
  it('keeps every user in the same bucket across calls, processes and releases', () => {
    // Pinned values: if these change, a release moves users between variants in the middle of a rollout.
    expect(bucket('checkout', 'alice')).toBe(3009);
    expect(bucket('checkout', 'bob')).toBe(6439);
    for (const user of USERS.slice(0, 100)) expect(bucket('checkout', user)).toBe(bucket('checkout', user));
  });

  it('spreads users uniformly: 10% of 20,000 users is 10% ± 1.5%, and so is every tenth of the buckets', () => {
    expect(share({ name: 'new-model', percent: 10 })).toBeGreaterThan(0.085);
    expect(share({ name: 'new-model', percent: 10 })).toBeLessThan(0.115);
    const tenths = new Array<number>(10).fill(0);
    for (const user of USERS) tenths[Math.floor(bucket('new-model', user) / 1000)]! += 1;
    for (const count of tenths) expect(Math.abs(count / USERS.length - 0.1)).toBeLessThan(0.015);
  });

  it('is monotonic: raising 10% to 25% keeps everyone who was in, and adds about 15% more', () => {
    const at10 = USERS.filter((user) => inFlag({ name: 'new-model', percent: 10 }, user));
    const at25 = new Set(USERS.filter((user) => inFlag({ name: 'new-model', percent: 25 }, user)));
    expect(at10.every((user) => at25.has(user))).toBe(true);
    expect(Math.abs(at25.size / USERS.length - 0.25)).toBeLessThan(0.015);
  });

  it('puts nobody in at 0% and everybody at 100%', () => {
    expect(share({ name: 'new-model', percent: 0 })).toBe(0);
    expect(share({ name: 'new-model', percent: 100 })).toBe(1);
  });

  it('counts 1% as exactly the 100 lowest buckets', () => {
    expect(inFlag({ name: 'new-model', percent: 1 }, findKey((key) => bucket('new-model', key) === 99))).toBe(true);
    expect(inFlag({ name: 'new-model', percent: 1 }, findKey((key) => bucket('new-model', key) === 100))).toBe(false);
  });

  it('draws different flags independently: the overlap of 30% and 40% is about 12%', () => {
    const a = { name: 'new-model', percent: 30 };
    const b = { name: 'short-answers', percent: 40 };
    const both = USERS.filter((user) => inFlag(a, user) && inFlag(b, user)).length / USERS.length;
    expect(Math.abs(both - 0.12)).toBeLessThan(0.015);
  });
});

describe('selectFlags', () => {
  const half = (name: string, stickyBy: 'user' | 'client'): CompiledFlag => ({ name, stickyBy, percent: 50, set: { models: { chat: { maxOutputTokens: 10 } } } });
  const request = (fields: Partial<FlagRequest>): FlagRequest => ({ model: 'chat', client: 'web', requestId: 'req-1', ...fields });
  const names = (selection: { flags: CompiledFlag[] }) => selection.flags.map((f) => f.name);

  it('keys user-sticky flags by the user field first, then the x-llmroute-user header', () => {
    const split = half('split', 'user');
    const inside = findKey((key) => inFlag(split, key));
    const outside = findKey((key) => !inFlag(split, key));
    expect(selectFlags([split], request({ user: inside, header: outside }))).toEqual({ flags: [split], userKey: 'user' });
    expect(selectFlags([split], request({ user: outside, header: inside }))).toEqual({ flags: [], userKey: 'user' });
    expect(selectFlags([split], request({ header: inside }))).toEqual({ flags: [split], userKey: 'header' });
    expect(selectFlags([split], request({ user: '', header: inside }))).toEqual({ flags: [split], userKey: 'header' });
  });

  it('falls back to the request id when no user is named: a coin flip per request, and says so', () => {
    const split = half('split', 'user');
    const inside = findKey((key) => inFlag(split, key), 'req');
    const outside = findKey((key) => !inFlag(split, key), 'req');
    expect(selectFlags([split], request({ requestId: inside }))).toEqual({ flags: [split], userKey: 'request' });
    expect(selectFlags([split], request({ requestId: outside }))).toEqual({ flags: [], userKey: 'request' });
  });

  it('keys client-sticky flags by the client, whoever the user is', () => {
    const split = half('split', 'client');
    const inside = findKey((key) => inFlag(split, key), 'client');
    const outside = findKey((key) => !inFlag(split, key), 'client');
    const anyUser = findKey((key) => !inFlag(split, key));
    expect(selectFlags([split], request({ client: inside, user: anyUser }))).toEqual({ flags: [split], userKey: undefined });
    expect(selectFlags([split], request({ client: outside, user: findKey((key) => inFlag(split, key)) }))).toEqual({ flags: [], userKey: undefined });
  });

  it('evaluates only the flags that override the requested model, in config order', () => {
    const a: CompiledFlag = { name: 'a', stickyBy: 'user', percent: 100, set: { models: { chat: { pin: 'gpt-4.1-2025-04-14' } } } };
    const other: CompiledFlag = { name: 'other', stickyBy: 'user', percent: 100, set: { models: { embed: { pin: 'text-embedding-3-large' } } } };
    const b: CompiledFlag = { name: 'b', stickyBy: 'client', percent: 100, set: { models: { chat: { maxOutputTokens: 10 } } } };
    expect(names(selectFlags([a, other, b], request({ user: 'alice' })))).toEqual(['a', 'b']);
    expect(selectFlags([a, other, b], request({ model: 'embed', user: 'alice' }))).toEqual({ flags: [other], userKey: 'user' });
    expect(selectFlags([a, b], request({ model: 'images' }))).toEqual({ flags: [], userKey: undefined });
  });

  it('does not mistake Object.prototype for an override of a model named like one of its members', () => {
    const a: CompiledFlag = { name: 'a', stickyBy: 'user', percent: 100, set: { models: { chat: { maxOutputTokens: 10 } } } };
    expect(selectFlags([a], request({ model: 'constructor' })).flags).toEqual([]);
  });
});

describe('applyFlags', () => {
  /** What the compiler makes of the model with the flags' overrides written into it, in order. */
  const expected = (...overrides: NonNullable<FlagInput['set']['models']>[string][]) => compiled(Object.assign({}, chat, ...overrides)).model;

  it('moves the steps that used the pin to the new pin, and leaves steps naming their own model alone', () => {
    const set = { pin: 'gpt-4.1-2025-04-14' };
    const { model, flags } = compiled(chat, [flag('new-pin', set)]);
    const result = applyFlags(model, flags);
    expect(result.fallback).toEqual([
      { provider: 'openai', model: 'gpt-4.1-2025-04-14' },
      { provider: 'anthropic', model: 'claude-sonnet-4-20250514' },
      { provider: 'vllm', model: 'gpt-4.1-2025-04-14' },
    ]);
    expect(result).toEqual(expected(set));
  });

  it('uses a flag\'s fallback chain, its steps without a model asking for the pin', () => {
    const set = { fallback: [{ provider: 'anthropic' }, { provider: 'openai', model: 'gpt-4o-mini-2024-07-18' }] };
    const { model, flags } = compiled(chat, [flag('anthropic-first', set)]);
    const result = applyFlags(model, flags);
    expect(result.fallback).toEqual([
      { provider: 'anthropic', model: 'gpt-4o-2024-08-06' },
      { provider: 'openai', model: 'gpt-4o-mini-2024-07-18' },
    ]);
    expect(result).toEqual(expected(set));
  });

  it('resolves a flag\'s chain against the pin as overridden, even by a later flag', () => {
    const chain = { fallback: [{ provider: 'vllm' }] };
    const pin = { pin: 'llama-3.1-70b' };
    const { model, flags } = compiled(chat, [flag('chain', chain), flag('pin', pin)]);
    expect(applyFlags(model, flags).fallback).toEqual([{ provider: 'vllm', model: 'llama-3.1-70b' }]);
    expect(applyFlags(model, flags)).toEqual(expected(chain, pin));
  });

  it('overrides caps, keeps the fields a flag leaves unset, and lets later flags win', () => {
    const first = { maxOutputTokens: 512, maxInputTokens: 8000 };
    const second = { maxOutputTokens: 256 };
    const { model, flags } = compiled(chat, [flag('first', first), flag('second', second)]);
    const result = applyFlags(model, flags);
    expect(result).toMatchObject({ maxInputTokens: 8000, maxOutputTokens: 256, pin: 'gpt-4o-2024-08-06' });
    expect(result).toEqual(expected(first, second));
    expect(applyFlags(model, [...flags].reverse()).maxOutputTokens).toBe(512);
  });

  it('sets a cap the model does not have', () => {
    const { model, flags } = compiled({ ...chat, maxOutputTokens: undefined }, [flag('capped', { maxOutputTokens: 100 })]);
    expect(model.maxOutputTokens).toBeUndefined();
    expect(applyFlags(model, flags).maxOutputTokens).toBe(100);
  });

  it('never mutates the model, and returns it as is when no flag overrides it', () => {
    const { model, flags } = compiled(chat, [flag('new-pin', { pin: 'gpt-4.1-2025-04-14', maxOutputTokens: 1 })]);
    const before = structuredClone(model);
    expect(applyFlags(model, flags)).not.toEqual(before);
    expect(model).toEqual(before);
    const elsewhere: CompiledFlag = { name: 'elsewhere', stickyBy: 'user', percent: 100, set: { models: { embed: { pin: 'x' } } } };
    expect(applyFlags(model, [elsewhere])).toBe(model);
    expect(applyFlags(model, [])).toBe(model);
  });

  it('moves an explicit step that names the pin\'s snapshot with the pin: after compilation the two look alike', () => {
    const explicit = { ...chat, fallback: [{ provider: 'openai', model: 'gpt-4o-2024-08-06' }] };
    const { model, flags } = compiled(explicit, [flag('new-pin', { pin: 'gpt-4.1-2025-04-14' })]);
    expect(applyFlags(model, flags).fallback).toEqual([{ provider: 'openai', model: 'gpt-4.1-2025-04-14' }]);
  });
});

describe('variant label and header', () => {
  const named = (...names: string[]) => names.map((name) => ({ name }));

  it('labels requests outside every flag as baseline, and leaves the header out', () => {
    expect(variantLabel([])).toBe('baseline');
    expect(flagsHeader([])).toBeUndefined();
  });

  it('labels a request in one flag with its name', () => {
    expect(variantLabel(named('new-model'))).toBe('new-model');
    expect(flagsHeader(named('new-model'))).toBe('new-model');
  });

  it('joins several flags in the order they were applied', () => {
    expect(variantLabel(named('new-model', 'short-answers'))).toBe('new-model+short-answers');
    expect(flagsHeader(named('new-model', 'short-answers'))).toBe('new-model,short-answers');
  });

  it('labels what selectFlags chose, so flags on other models do not change the label', () => {
    const a: CompiledFlag = { name: 'a', stickyBy: 'user', percent: 100, set: { models: { chat: { maxOutputTokens: 10 } } } };
    const other: CompiledFlag = { name: 'other', stickyBy: 'user', percent: 100, set: { models: { embed: { pin: 'x' } } } };
    const { flags } = selectFlags([a, other], { model: 'chat', user: 'alice', client: 'web', requestId: 'r' });
    expect(variantLabel(flags)).toBe('a');
  });
});
