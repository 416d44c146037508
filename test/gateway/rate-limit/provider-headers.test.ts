import { describe, expect, it } from '@jest/globals';
import { holdFor, parseDuration, parseResetTime, readProviderReport, shareOfReport } from '../../../src/gateway/rate-limit/provider-headers.js';

const headers = (values: Record<string, string>) => ({ get: (name: string) => values[name] ?? null });
const NOW = Date.parse('2026-03-01T12:00:00Z');

describe('parseDuration (OpenAI resets)', () => {
  it.each([
    ['6m0s', 360_000],
    ['1s', 1000],
    ['20ms', 20],
    ['0.5s', 500],
    ['1h2m3.5s', 3_723_500],
    ['1m30s', 90_000],
    ['250us', 0.25],
    ['250µs', 0.25],
    ['5ns', 5e-6],
    [' 2s ', 2000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', '6', 's', '-1s', '1 s', '1d', '1s garbage', 'NaNs', '1.s'])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('parseResetTime (Anthropic resets)', () => {
  it('is the time from now until an RFC 3339 instant, in any offset', () => {
    expect(parseResetTime('2026-03-01T12:00:20Z', NOW)).toBe(20_000);
    expect(parseResetTime('2026-03-01T12:00:01.500Z', NOW)).toBe(1500);
    expect(parseResetTime('2026-03-01T13:00:30+01:00', NOW)).toBe(30_000);
  });

  it('is 0 for an instant already past, and undefined for what is not RFC 3339', () => {
    expect(parseResetTime('2026-03-01T11:59:00Z', NOW)).toBe(0);
    expect(parseResetTime('Sun, 01 Mar 2026 12:00:20 GMT', NOW)).toBeUndefined();
    expect(parseResetTime('20s', NOW)).toBeUndefined();
    expect(parseResetTime('2026-03-01T12:00:20', NOW)).toBeUndefined();
  });
});

describe('readProviderReport', () => {
  it('reads OpenAI\'s limit, remaining and reset for requests and tokens', () => {
    const report = readProviderReport(
      headers({
        'x-ratelimit-limit-requests': '500',
        'x-ratelimit-remaining-requests': '499',
        'x-ratelimit-reset-requests': '120ms',
        'x-ratelimit-limit-tokens': '30000',
        'x-ratelimit-remaining-tokens': '29000',
        'x-ratelimit-reset-tokens': '2s',
      }),
      NOW,
    );
    expect(report).toEqual({ requests: { remaining: 499, limit: 500, resetMs: 120 }, tokens: { remaining: 29_000, limit: 30_000, resetMs: 2000 } });
  });

  it('reads Azure\'s remaining counts without a reset or limit', () => {
    expect(readProviderReport(headers({ 'x-ratelimit-remaining-requests': '9', 'x-ratelimit-remaining-tokens': '1200' }), NOW)).toEqual({ requests: { remaining: 9 }, tokens: { remaining: 1200 } });
  });

  it('reads Anthropic\'s headers, resets as RFC 3339 times', () => {
    const report = readProviderReport(
      headers({
        'anthropic-ratelimit-requests-limit': '50',
        'anthropic-ratelimit-requests-remaining': '3',
        'anthropic-ratelimit-requests-reset': '2026-03-01T12:00:45Z',
        'anthropic-ratelimit-tokens-remaining': '100',
        'anthropic-ratelimit-tokens-reset': '2026-03-01T12:00:01Z',
      }),
      NOW,
    );
    expect(report).toEqual({ requests: { remaining: 3, limit: 50, resetMs: 45_000 }, tokens: { remaining: 100, resetMs: 1000 } });
  });

  it('reads retry-after-ms before retry-after, and retry-after as seconds or a date', () => {
    expect(readProviderReport(headers({ 'retry-after-ms': '1500', 'retry-after': '9' }), NOW)).toEqual({ retryAfterMs: 1500 });
    expect(readProviderReport(headers({ 'retry-after': '2' }), NOW)).toEqual({ retryAfterMs: 2000 });
    expect(readProviderReport(headers({ 'retry-after': 'Sun, 01 Mar 2026 12:00:07 GMT' }), NOW)).toEqual({ retryAfterMs: 7000 });
  });

  it('leaves out what is missing or garbled, and a reset or limit without its remaining count', () => {
    expect(readProviderReport(headers({}), NOW)).toEqual({});
    expect(readProviderReport(headers({ 'x-ratelimit-remaining-requests': 'lots', 'x-ratelimit-remaining-tokens': '-5', 'x-ratelimit-reset-tokens': '1s' }), NOW)).toEqual({});
    expect(readProviderReport(headers({ 'x-ratelimit-remaining-requests': '4', 'x-ratelimit-reset-requests': 'soon', 'x-ratelimit-limit-requests': '' }), NOW)).toEqual({ requests: { remaining: 4 } });
  });
});

describe('holdFor', () => {
  /** 60 requests a minute: 0.001 a millisecond. */
  const PER_MS = 60 / 60_000;

  it('says nothing when the provider reported nothing for the bucket', () => {
    expect(holdFor('requests', { tokens: { remaining: 0 } }, PER_MS)).toBeUndefined();
  });

  it('caps the bucket at what the provider has left', () => {
    expect(holdFor('requests', { requests: { remaining: 2 } }, PER_MS)).toEqual({ ceiling: 2, reason: 'remaining', message: 'the provider has 2 requests left' });
    expect(holdFor('tokens', { tokens: { remaining: 0, resetMs: 5000 } }, 0.5)).toMatchObject({ ceiling: 0, reason: 'remaining' });
  });

  it('holds back further when the provider refills more slowly than the configured rate', () => {
    // The provider refills 30 requests in 60 s (0.5 a second) where the limiter would admit 60 (one a second): by the
    // reset the limiter may admit 30 at most, so it may hold 30 − 60 = −30 now (30 s of its own refill owed).
    const hold = holdFor('requests', { requests: { remaining: 0, limit: 30, resetMs: 60_000 } }, PER_MS);
    expect(hold).toMatchObject({ ceiling: -30, reason: 'slower_refill' });
    expect(hold?.message).toBe('the provider refills 30 of its 30 requests in 60s, slower than the configured limit');
  });

  it('changes nothing beyond `remaining` when the provider refills at least as fast', () => {
    // Our limit is the provider's: 60 a minute, one used, back in a second.
    expect(holdFor('requests', { requests: { remaining: 59, limit: 60, resetMs: 1000 } }, PER_MS)).toMatchObject({ ceiling: 59, reason: 'remaining' });
  });

  it('empties the bucket until a retry-after, whichever bucket it is', () => {
    expect(holdFor('requests', { retryAfterMs: 2000 }, PER_MS)).toEqual({ ceiling: -2, reason: 'retry_after', message: 'the provider asked to wait 2s' });
    expect(holdFor('tokens', { retryAfterMs: 2000, tokens: { remaining: 500 } }, 0.5)).toMatchObject({ ceiling: -1000, reason: 'retry_after' });
  });

  it('takes the lowest ceiling when the report says several things', () => {
    expect(holdFor('requests', { requests: { remaining: 1, limit: 60, resetMs: 1000 }, retryAfterMs: 3000 }, PER_MS)).toMatchObject({ ceiling: -3, reason: 'retry_after' });
  });
});

describe('shareOfReport', () => {
  it('divides what is left and the limit among the replicas, not the times', () => {
    expect(shareOfReport({ requests: { remaining: 30, limit: 60, resetMs: 1000 }, tokens: { remaining: 900 }, retryAfterMs: 500 }, 3)).toEqual({
      requests: { remaining: 10, limit: 20, resetMs: 1000 },
      tokens: { remaining: 300 },
      retryAfterMs: 500,
    });
  });
});
