/**
 * The error taxonomy: every upstream failure is one of these classes, each with its own policy and its own metric
 * label. The crucial split is rate-limited versus quota-exhausted: both arrive as 429, backoff fixes only the first.
 */
export const ERROR_CLASSES = [
  'rate_limited',
  'quota_exhausted',
  'overloaded',
  'server_error',
  'connection_reset',
  'timeout',
  'stream_stall',
  'stream_cut',
  'auth_failed',
  'context_length_exceeded',
  'content_filtered',
  'bad_request',
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

export interface UpstreamError {
  class: ErrorClass;
  provider: string;
  /** The provider's HTTP status, when it answered. */
  status?: number;
  /** The provider's own words, for the client and the logs (never contains the key). */
  message: string;
  /** The provider's error code or type (`insufficient_quota`, `rate_limit_exceeded`, `overloaded_error`, ...). */
  code?: string;
  /** From `retry-after-ms` or `retry-after`. */
  retryAfterMs?: number;
}

export interface Policy {
  /** Try the same provider again (after backoff or the provider's Retry-After). */
  retry: boolean;
  /** Move on to the next step of the fallback chain. */
  failover: boolean;
  /** Try the provider's next key before anything else. */
  nextKey: boolean;
  /** Take the provider out of rotation for this long (a quota that is gone will not come back in seconds). */
  cooldownMs: number;
  /** Counts against the circuit breaker. Client mistakes do not: they say nothing about the provider's health. */
  breaker: boolean;
}

export const POLICIES: Record<ErrorClass, Policy> = {
  rate_limited: { retry: true, failover: true, nextKey: false, cooldownMs: 0, breaker: false },
  quota_exhausted: { retry: false, failover: true, nextKey: true, cooldownMs: 15 * 60_000, breaker: false },
  overloaded: { retry: false, failover: true, nextKey: false, cooldownMs: 0, breaker: true },
  server_error: { retry: true, failover: true, nextKey: false, cooldownMs: 0, breaker: true },
  connection_reset: { retry: true, failover: true, nextKey: false, cooldownMs: 0, breaker: true },
  // A silent provider is not retried on the same route: the next attempt would most likely wait just as long.
  timeout: { retry: false, failover: true, nextKey: false, cooldownMs: 0, breaker: true },
  stream_stall: { retry: false, failover: true, nextKey: false, cooldownMs: 0, breaker: true },
  stream_cut: { retry: false, failover: true, nextKey: false, cooldownMs: 0, breaker: true },
  auth_failed: { retry: false, failover: true, nextKey: true, cooldownMs: 0, breaker: false },
  // The next model in the chain may have a larger context window; the same model never will.
  context_length_exceeded: { retry: false, failover: true, nextKey: false, cooldownMs: 0, breaker: false },
  content_filtered: { retry: false, failover: false, nextKey: false, cooldownMs: 0, breaker: false },
  bad_request: { retry: false, failover: false, nextKey: false, cooldownMs: 0, breaker: false },
};

/** OpenAI's error body: what the OpenAI SDK parses into its typed errors. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function openAIError(message: string, type: string, code: string | null = null, param: string | null = null): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

/** The status and OpenAI error type the client sees when every step of the chain failed with this class. */
export const CLIENT_ERROR: Record<ErrorClass, { status: number; type: string }> = {
  rate_limited: { status: 429, type: 'rate_limit_error' },
  quota_exhausted: { status: 429, type: 'insufficient_quota' },
  overloaded: { status: 503, type: 'server_error' },
  server_error: { status: 502, type: 'server_error' },
  connection_reset: { status: 502, type: 'server_error' },
  timeout: { status: 504, type: 'timeout' },
  stream_stall: { status: 504, type: 'timeout' },
  stream_cut: { status: 502, type: 'server_error' },
  auth_failed: { status: 502, type: 'server_error' },
  context_length_exceeded: { status: 400, type: 'invalid_request_error' },
  content_filtered: { status: 400, type: 'invalid_request_error' },
  bad_request: { status: 400, type: 'invalid_request_error' },
};

/** Parses `retry-after-ms` (milliseconds) or `retry-after` (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(headers: { get(name: string): string | null }, now = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const after = headers.get('retry-after');
  if (after === null || after.trim() === '') return undefined;
  if (Number.isFinite(Number(after))) return Math.max(0, Number(after) * 1000);
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
