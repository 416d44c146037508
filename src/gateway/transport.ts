/**
 * Sending upstream requests. One undici Pool per provider origin, with keep-alive, so a request reuses a warm
 * connection instead of paying TCP and TLS setup. The `mock` provider has an in-process transport instead.
 */
import { Pool } from 'undici';
import type { HttpRequest } from './types.js';

export interface UpstreamResponse {
  status: number;
  headers: { get(name: string): string | null };
  /** The body as it arrives. Consume it or call `discard()`. */
  body: AsyncIterable<Uint8Array>;
  text(): Promise<string>;
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
      body: response.body,
      text: () => response.body.text(),
      discard: () => {
        response.body.destroy();
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
    this.pools.clear();
  }
}
