/**
 * A minimal client for Prometheus' HTTP API: instant queries only, which is all rollout analysis and budget status
 * need. Every error names the query and, when Prometheus answered, the HTTP status and Prometheus' own message,
 * because that message ("parse error at char 12", "query timed out") is what an operator needs to fix it.
 */

/** One series of an instant vector, or the single value of a scalar result (with no labels). */
export interface Sample {
  labels: Record<string, string>;
  /** NaN, +Inf and -Inf arrive as strings and are returned as the numbers they stand for. */
  value: number;
}

export interface PrometheusClient {
  /** Evaluates `promql` at `time` (default: Prometheus' now) through `/api/v1/query`. */
  query(promql: string, time?: Date): Promise<Sample[]>;
}

export interface PrometheusOptions {
  /** Base URL, e.g. `http://prometheus.monitoring:9090` or one with a path prefix such as `http://host/prometheus`. */
  url: string;
  /** Upper bound on one query, connection included; also sent to Prometheus so it stops evaluating. Default 10 s. */
  timeoutMs?: number;
}

export class PrometheusQueryError extends Error {
  constructor(
    message: string,
    readonly query: string,
    /** The HTTP status, when Prometheus answered at all. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'PrometheusQueryError';
  }
}

interface ApiResponse {
  status?: string;
  errorType?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

type RawSample = { metric?: Record<string, string>; value?: [number, string] };

export function prometheusClient(options: PrometheusOptions): PrometheusClient {
  const timeoutMs = options.timeoutMs ?? 10_000;
  // A relative 'api/v1/query' keeps a path prefix; a base without a trailing slash would drop its last segment.
  const endpoint = new URL('api/v1/query', options.url.endsWith('/') ? options.url : `${options.url}/`);

  return {
    async query(promql, time) {
      const fail = (message: string, status?: number) =>
        new PrometheusQueryError(`${message} (query: ${promql})`, promql, status);
      const form = new URLSearchParams({ query: promql, timeout: `${timeoutMs / 1000}s` });
      if (time) form.set('time', (time.getTime() / 1000).toFixed(3));

      let response: Response;
      try {
        // POST, so long selectors never hit a URL length limit.
        response = await fetch(endpoint, { method: 'POST', body: form, signal: AbortSignal.timeout(timeoutMs) });
      } catch (error) {
        if (errorField(error, 'name') === 'TimeoutError') throw fail(`Prometheus at ${endpoint.origin} did not answer within ${timeoutMs} ms`);
        throw fail(`Prometheus at ${endpoint.origin} is unreachable: ${describeCause(error)}`);
      }

      const text = await response.text();
      let body: ApiResponse;
      try {
        body = JSON.parse(text) as ApiResponse;
      } catch {
        throw fail(`Prometheus answered HTTP ${response.status} with a body that is not JSON: ${text.slice(0, 300)}`, response.status);
      }
      if (body.status !== 'success' || !response.ok) {
        throw fail(`Prometheus answered HTTP ${response.status}: ${body.errorType ?? 'error'}: ${body.error ?? text.slice(0, 300)}`, response.status);
      }

      const result = body.data?.result;
      switch (body.data?.resultType) {
        case 'vector':
          return (result as RawSample[]).map((sample) => ({ labels: sample.metric ?? {}, value: parseValue(sample.value?.[1]) }));
        case 'scalar':
          return [{ labels: {}, value: parseValue((result as [number, string])[1]) }];
        default:
          throw fail(`expected an instant vector or a scalar, Prometheus returned a ${body.data?.resultType ?? 'missing'} result`, response.status);
      }
    },
  };
}

/** Prometheus writes special floats as Go does; `Number('+Inf')` would be NaN. */
function parseValue(text: string | undefined): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return text === undefined ? NaN : Number(text);
}

/** fetch() reports network failures as "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND) is in `cause`. */
function describeCause(error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  const detail = errorField(cause, 'code') ?? errorField(cause, 'message');
  return `${errorField(error, 'message') ?? String(error)}${detail ? `: ${detail}` : ''}`;
}

/**
 * A string field of a thrown value. Read structurally, not with `instanceof Error`: fetch's errors come from Node's
 * own realm, which is not the caller's under a VM sandbox (jest's ESM mode among them).
 */
function errorField(error: unknown, field: 'name' | 'message' | 'code'): string | undefined {
  const value = typeof error === 'object' && error !== null ? (error as Record<string, unknown>)[field] : undefined;
  return typeof value === 'string' ? value : undefined;
}
