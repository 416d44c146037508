/**
 * Sending upstream requests. One undici Pool per provider origin, with keep-alive, so a request reuses a warm
 * connection instead of paying TCP and TLS setup. The `mock` provider has an in-process transport instead.
 */
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import type { HttpRequest } from './types.js';

export interface UpstreamResponse {
  status: number;
  headers: { get(name: string): string | null };
  /** The body as it arrives. Leaving the loop early does not close it: consume it or call `discard()`. */
  body: AsyncIterable<Uint8Array>;
  text(): Promise<string>;
  /** Stop reading: what is left is drained, so the connection can serve the next request, or dropped if it lingers. */
  discard(): void;
}

export interface Transport {
  send(request: HttpRequest, signal: AbortSignal): Promise<UpstreamResponse>;
  close(): Promise<void>;
}

function headerGetter(headers: Record<string, string | string[] | undefined>) {
  return {
    get(name: string): string | null {
      const value = headers[name.toLowerCase()];
      if (value === undefined) return null;
      return Array.isArray(value) ? value.join(', ') : value;
    },
  };
}

/** How long the rest of a body that is no longer wanted may take to arrive before its connection is dropped. */
const DRAIN_GRACE_MS = 1000;

/**
 * An answer is complete at `[DONE]`, usually a few bytes before its body ends. Destroying the body there would make
 * undici build an abort error (with a stack trace) for every request and could close a connection the pool could
 * reuse; reading the few bytes left is cheaper. A provider that keeps the body open after `[DONE]` loses the
 * connection after the grace period.
 */
function drain(body: Readable): void {
  if (body.destroyed || body.readableEnded) return;
  const timer = setTimeout(() => body.destroy(), DRAIN_GRACE_MS);
  body.once('close', () => clearTimeout(timer));
  // The body may still fail (a reset connection); nobody waits for it any more.
  body.on('error', () => {});
  body.resume();
}

/** Keep-alive pools per origin. Connections are opened on demand and closed when idle. */
export class HttpTransport implements Transport {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly options: { connections?: number; connectTimeoutMs?: number } = {}) {}

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: this.options.connections ?? 128,
        connect: { timeout: this.options.connectTimeoutMs ?? 10_000 },
        keepAliveTimeout: 30_000,
        // Time limits are the router's: first token, idle and total, per model.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  async send(request: HttpRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    const url = new URL(request.url);
    const response = await this.pool(url.origin).request({
      path: `${url.pathname}${url.search}`,
      method: request.method,
      headers: request.headers,
      ...(request.body === undefined ? {} : { body: request.body }),
      signal,
    });
    return {
      status: response.statusCode,
      headers: headerGetter(response.headers),
      body: response.body.iterator({ destroyOnReturn: false }),
      text: () => response.body.text(),
      discard: () => drain(response.body),
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
    this.pools.clear();
  }
}
