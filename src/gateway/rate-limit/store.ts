/**
 * The Redis side of the shared rate limits: one connection per gateway process, the ADMIT script, and whether Redis
 * is reachable. Every limiter of the process shares it, so an outage is noticed once, reported once, and probed by
 * one timer, however many providers and clients have limits.
 *
 * Its own connection, not the budget ledger's: the ledger replays its kept settles in order on its connection when
 * Redis returns, and admissions must not queue behind that. Like the ledger's, it fails fast instead of queueing
 * commands while disconnected (see budget/redis-client.ts): admission never waits for Redis to come back.
 */
import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { connectBudgetRedis } from '../budget/redis-client.js';
import { keyPrefix, type RouteRef } from '../budget/redis-ledger.js';
import { ADMIT } from './redis-script.js';

/** One bucket as ADMIT takes it. Without a limit: per = 0. */
export interface BucketArgs {
  /** Milliseconds per unit. */
  per: number;
  capacity: number;
  /** Applied before anything else; negative gives units back. */
  charge: number;
  /** The bucket may be full no earlier than this many milliseconds from now; 0: no hold. */
  holdMs: number;
  /** Units to admit. */
  amount: number;
}

export interface AdmitReply {
  /** Undefined when nothing was asked (`longestWaitMs` < 0). */
  admitted: boolean | undefined;
  /** When the buckets have room for the request: the wait if admitted, the retry-after if not. */
  waitMs: number;
  /** Milliseconds until each bucket is full again. */
  aheadMs: { requests: number; tokens: number };
  /** Whether the bucket's hold lowered it: it held no more than the provider said was left. */
  held: { requests: boolean; tokens: boolean };
}

export interface RateLimitStoreOptions {
  /** A client that fails fast rather than queueing (see budget/redis-client.ts). */
  redis: Redis;
  route: RouteRef;
  /** True when limits fall back to local shares, false when they are back in Redis. */
  onDegraded?: (degraded: boolean, error?: unknown) => void;
  /** How often to try Redis again while it is out of reach. */
  probeMs?: number;
}

/** How long startup waits for Redis: the client's connect time-out. */
const CONNECT_TIMEOUT_MS = 2000;

export class RateLimitStore {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly onDegraded: ((degraded: boolean, error?: unknown) => void) | undefined;
  private readonly probeMs: number;
  private probe: ReturnType<typeof setInterval> | undefined;
  private outages = 0;

  constructor(options: RateLimitStoreOptions) {
    this.redis = options.redis;
    this.prefix = `${keyPrefix(options.route)}ratelimit:`;
    this.onDegraded = options.onDegraded;
    this.probeMs = options.probeMs ?? 1000;
  }

  /**
   * Connects to the Redis whose URL is in `urlFile`, waiting at most 2 seconds: a Redis out of reach at startup is
   * an outage like any other, and the limiters start on their local shares.
   */
  static async connect(urlFile: string, options: Omit<RateLimitStoreOptions, 'redis'>): Promise<RateLimitStore> {
    const url = (await readFile(urlFile, 'utf8')).trim();
    const redis = connectBudgetRedis(url, { lazyConnect: true, connectTimeout: CONNECT_TIMEOUT_MS });
    const store = new RateLimitStore({ ...options, redis });
    await redis.connect().catch((error: unknown) => store.fail(error));
    return store;
  }

  /** Whether Redis is out of reach: limiters admit on their local shares. */
  get degraded(): boolean {
    return this.probe !== undefined;
  }

  /** Counts outages, so a limiter can tell that the one it fell back in has ended, even if another began since. */
  get outage(): number {
    return this.outages;
  }

  /** The keys of one limiter's buckets, e.g. `provider:openai`. */
  keys(name: string): [string, string] {
    return [`${this.prefix}${name}:requests`, `${this.prefix}${name}:tokens`];
  }

  /**
   * Runs ADMIT. A failure of any kind (no connection, a time-out, Redis refusing the script) marks the store
   * degraded before it rejects.
   */
  async admit(keys: readonly [string, string], requests: BucketArgs, tokens: BucketArgs, longestWaitMs: number): Promise<AdmitReply> {
    const args = [requests.per, tokens.per, requests.capacity, tokens.capacity, requests.charge, tokens.charge, requests.holdMs, tokens.holdMs, requests.amount, tokens.amount, longestWaitMs];
    let reply: unknown;
    try {
      reply = await this.redis.eval(ADMIT, 2, ...keys, ...args);
    } catch (error) {
      this.fail(error);
      throw error;
    }
    const [admitted, waitMs, requestsAhead, tokensAhead, requestsHeld, tokensHeld] = (reply as unknown[]).map(Number) as [number, number, number, number, number, number];
    return { admitted: admitted < 0 ? undefined : admitted === 1, waitMs, aheadMs: { requests: requestsAhead, tokens: tokensAhead }, held: { requests: requestsHeld === 1, tokens: tokensHeld === 1 } };
  }

  /** Stops probing and closes the connection. */
  close(): void {
    clearInterval(this.probe);
    this.probe = undefined;
    this.redis.disconnect();
  }

  /** Falls back to local shares, once per outage, and probes Redis until it answers. */
  private fail(error: unknown): void {
    if (this.probe !== undefined) return;
    this.outages++;
    this.probe = setInterval(() => {
      this.redis.ping().then(
        () => this.recover(),
        () => undefined,
      );
    }, this.probeMs);
    this.probe.unref();
    this.onDegraded?.(true, error);
  }

  private recover(): void {
    if (this.probe === undefined) return;
    clearInterval(this.probe);
    this.probe = undefined;
    this.onDegraded?.(false);
  }
}
