/**
 * What a provider's response headers say about its own rate limits, and how far that makes the gateway's limiter
 * hold back. Pure: headers in, numbers out.
 *
 * Headers read (on every response, successes included):
 * - OpenAI and Azure OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; resets are Go durations
 *   (`6m0s`, `1s`, `20ms`). Azure often sends only the `remaining` ones.
 * - Anthropic: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`; resets are RFC 3339 times.
 * - `retry-after-ms` and `retry-after` (seconds or an HTTP date), on 429s and 503s.
 *
 * Both providers document their limits as token buckets: `remaining` is what can be sent now, and `reset` is when
 * the bucket will be full again, refilling continuously until then. The gateway's limiter is a token bucket too, so
 * the provider's report becomes a ceiling on the limiter's bucket (see `holdFor`). A ceiling only ever lowers the
 * bucket: a report can hold the limiter back, never let it exceed the configured limit.
 */
import { retryAfterMs } from '../errors.js';

export interface HeaderReader {
  get(name: string): string | null;
}

/** One of the provider's buckets, as it reported it. */
export interface ReportedBucket {
  /** What can be sent now. */
  remaining: number;
  /** The bucket's size, when reported. */
  limit?: number;
  /** Milliseconds until the bucket is full again, when reported. */
  resetMs?: number;
}

export interface ProviderReport {
  requests?: ReportedBucket;
  tokens?: ReportedBucket;
  /** The provider asked for nothing more until then. */
  retryAfterMs?: number;
}

export type Unit = 'requests' | 'tokens';

const DURATION_UNITS_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 };

/** A Go duration (`6m0s`, `1.5s`, `20ms`, `1h2m`) in milliseconds; undefined if it is not one. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^(\d+(\.\d+)?(h|ms|m|s|us|µs|ns))+$/.test(trimmed)) return undefined;
  let total = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) total += Number(amount) * (DURATION_UNITS_MS[unit as string] as number);
  return total;
}

/** Milliseconds from `now` until an RFC 3339 time (never negative); undefined if it is not one. */
export function parseResetTime(text: string, now: number): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(text.trim())) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A count header: a finite number ≥ 0, else undefined. */
function count(headers: HeaderReader, name: string): number | undefined {
  const text = headers.get(name);
  if (text === null || text.trim() === '') return undefined;
  const value = Number(text);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

function bucket(remaining: number | undefined, limit: number | undefined, resetMs: number | undefined): ReportedBucket | undefined {
  if (remaining === undefined) return undefined;
  return { remaining, ...(limit !== undefined ? { limit } : {}), ...(resetMs !== undefined ? { resetMs } : {}) };
}

function reportedBucket(headers: HeaderReader, unit: Unit, now: number): ReportedBucket | undefined {
  const openai = (field: string) => headers.get(`x-ratelimit-${field}-${unit}`);
  const anthropic = (field: string) => headers.get(`anthropic-ratelimit-${unit}-${field}`);
  const reset = openai('reset');
  const anthropicReset = anthropic('reset');
  return (
    bucket(count(headers, `x-ratelimit-remaining-${unit}`), count(headers, `x-ratelimit-limit-${unit}`), reset === null ? undefined : parseDuration(reset)) ??
    bucket(count(headers, `anthropic-ratelimit-${unit}-remaining`), count(headers, `anthropic-ratelimit-${unit}-limit`), anthropicReset === null ? undefined : parseResetTime(anthropicReset, now))
  );
}

/** Everything the headers say about the provider's limits; fields it did not send (or sent garbled) are absent. */
export function readProviderReport(headers: HeaderReader, now: number): ProviderReport {
  const requests = reportedBucket(headers, 'requests', now);
  const tokens = reportedBucket(headers, 'tokens', now);
  const retryAfter = retryAfterMs(headers, now);
  return { ...(requests ? { requests } : {}), ...(tokens ? { tokens } : {}), ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}) };
}

export type HoldReason = 'remaining' | 'slower_refill' | 'retry_after';

/** The most the limiter's bucket may hold now (negative: it owes that much, and waits it off at its own rate). */
export interface Hold {
  ceiling: number;
  reason: HoldReason;
  message: string;
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10}s`;

/**
 * The ceiling a provider's report puts on the limiter's bucket of `unit`, which refills at `perMs` units a
 * millisecond, or undefined when the report says nothing about it. The lowest of:
 *
 * - `remaining`: the provider accepts that much now, so the limiter may not admit more now.
 * - `slower_refill` (needs `limit` and `reset`): until the reset the provider refills `limit − remaining` units, at
 *   (limit − remaining) / reset a millisecond. When that is slower than the limiter's own rate (a key shared with
 *   other callers, or a configured limit above the provider's), admitting "ceiling + perMs × reset" by the reset must
 *   stay within the provider's "remaining + (limit − remaining)", so the ceiling is limit − perMs × reset. When the
 *   provider refills at least as fast, this is above `remaining` and changes nothing.
 * - `retry_after`: the provider asked for nothing until then: the bucket is empty at that time, so −perMs × wait now.
 */
export function holdFor(unit: Unit, report: ProviderReport, perMs: number): Hold | undefined {
  const holds: Hold[] = [];
  const reported = report[unit];
  if (reported !== undefined) {
    holds.push({ ceiling: reported.remaining, reason: 'remaining', message: `the provider has ${reported.remaining} ${unit} left` });
    if (reported.limit !== undefined && reported.resetMs !== undefined) {
      holds.push({
        ceiling: reported.limit - perMs * reported.resetMs,
        reason: 'slower_refill',
        message: `the provider refills ${reported.limit - reported.remaining} of its ${reported.limit} ${unit} in ${seconds(reported.resetMs)}, slower than the configured limit`,
      });
    }
  }
  if (report.retryAfterMs !== undefined) holds.push({ ceiling: -perMs * report.retryAfterMs, reason: 'retry_after', message: `the provider asked to wait ${seconds(report.retryAfterMs)}` });
  return holds.reduce<Hold | undefined>((lowest, hold) => (lowest === undefined || hold.ceiling < lowest.ceiling ? hold : lowest), undefined);
}

/** The report as one replica's local share sees it: each replica may take 1/`share` of what the provider has left. */
export function shareOfReport(report: ProviderReport, share: number): ProviderReport {
  const scale = (reported: ReportedBucket | undefined) =>
    reported === undefined ? undefined : { ...reported, remaining: reported.remaining / share, ...(reported.limit !== undefined ? { limit: reported.limit / share } : {}) };
  const requests = scale(report.requests);
  const tokens = scale(report.tokens);
  return { ...report, ...(requests ? { requests } : {}), ...(tokens ? { tokens } : {}) };
}
