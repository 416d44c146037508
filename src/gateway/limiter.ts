/**
 * Admission to one provider, throttled before the provider does it: requests and tokens per minute as token buckets
 * that refill continuously, and in front of them a bounded FIFO queue that drains at the buckets' pace. A spike then
 * waits a few seconds in order instead of spending the provider's quota at once and meeting a storm of 429s.
 *
 * The request bucket holds one second's worth of requests (or `requestBurst`): providers enforce per-minute limits
 * over shorter periods too, and 60 rpm means one request a second, not sixty in the first second. The token bucket
 * holds the whole minute's tokens, because single requests are large: a request larger than all of it is admitted
 * alone, on a full bucket, rather than never.
 *
 * One timer at most, for the head of the queue; waiters behind it cannot be admitted before it.
 *
 * This is the limiter of one process. With `gateway.redis`, `SharedLimiter` (rate-limit/shared-limiter.ts) keeps
 * the buckets in Redis for every replica, and falls back to this one, on a local share, while Redis is out of reach.
 * The provider's own rate-limit headers hold either back (rate-limit/provider-headers.ts).
 */
import type { CompiledProvider } from '../api/gateway-config.js';
import { holdFor, readProviderReport, shareOfReport, type HeaderReader, type Hold, type Unit } from './rate-limit/provider-headers.js';

export type ProviderLimits = NonNullable<CompiledProvider['limits']>;

export type LimiterErrorCode = 'queue_full' | 'queue_timeout';

export class LimiterError extends Error {
  override readonly name = 'LimiterError';
  readonly code: LimiterErrorCode;
  /** When the queue should have room for the request again: a retry-after for the client, or a hint to fail over. */
  readonly retryAfterMs: number;

  constructor(code: LimiterErrorCode, retryAfterMs: number) {
    super(code === 'queue_full' ? 'the admission queue is full' : 'the request cannot be admitted before its deadline');
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** An admitted request. Settle it once its usage is known, so the token bucket is charged what it really used. */
export interface Reservation {
  /** Tokens charged to the bucket: the estimate, then the last count given to `settle`. */
  readonly tokens: number;
  /** Time spent in the queue, for the request's log line. */
  readonly waitedMs: number;
}

export interface AcquireOptions {
  /** Estimated tokens, input and output (e.g. prompt tokens plus `max_tokens`). */
  tokens: number;
  /** Aborting removes the request from the queue and rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Time, on the limiter's clock, after which admission is useless (the request's total timeout). */
  deadlineMs?: number | undefined;
}

export type WaitOutcome = 'admitted' | LimiterErrorCode | 'aborted';

/** Admission to one provider (or for one client), local or shared by every replica. */
export interface Limiter {
  /**
   * Resolves when the request may be sent. Rejects with a `LimiterError`: `queue_full`, or `queue_timeout` when it
   * could not be admitted within the longest wait and `deadlineMs` (at once when that is already known, so the caller
   * can fail over without waiting); or with the signal's reason when aborted.
   */
  acquire(options: AcquireOptions): Promise<Reservation>;
  /**
   * Charges what the request really used instead of its estimate: gives back the difference, or takes the excess.
   * Called again with a later count (a stream's final usage), it corrects the previous one.
   */
  settle(reservation: Reservation, actualTokens: number): void;
  /** A provider's response headers: when they say it has fewer requests or tokens left, admission holds back. */
  observe(headers: HeaderReader): void;
  /** Requests waiting now. */
  queueDepth(): number;
}

/** Requests and tokens, e.g. what a limiter's buckets owe. */
export interface Amounts {
  requests: number;
  tokens: number;
}

/** A hold the provider's headers put on a bucket, reported only when it lowered the bucket (in Redis, as the script found it). */
export type OnHold = (unit: Unit, hold: Hold) => void;

export interface LimiterOptions {
  limits: ProviderLimits;
  /** Enforce 1/share of `limits` (and of what the provider reports left): one replica's share of the whole. */
  share?: number;
  /** Most requests waiting at once. */
  maxQueue?: number;
  /** Longest time a request waits in the queue. */
  maxWaitMs?: number;
  /** Requests admitted at once on a full bucket; one second's worth of `requestsPerMinute` by default. */
  requestBurst?: number;
  now?: () => number;
  /** Called once per `acquire` with the time it waited and how it ended, for a wait-time histogram. */
  onWait?: (waitedMs: number, outcome: WaitOutcome) => void;
  onHold?: OnHold;
}

/** Requests a full request bucket admits at once: one second's worth, at least one. */
export const requestBurst = (requestsPerMinute: number): number => Math.max(1, Math.ceil(requestsPerMinute / 60));

/** Rejects a token count that is not a finite number ≥ 0. */
export function checkTokens(name: string, tokens: number): void {
  if (!(tokens >= 0 && tokens < Infinity)) throw new RangeError(`${name} must be a finite number ≥ 0, got ${tokens}`);
}

/**
 * A token bucket refilled continuously: `perMs` tokens a millisecond, up to `capacity`. Its level goes negative when
 * a request larger than what was left, or a usage above the estimate, overdraws it; later requests wait it off.
 */
class Bucket {
  readonly capacity: number;
  readonly perMs: number;
  private level: number;
  private at: number;

  constructor(capacity: number, perMs: number, now: number) {
    this.capacity = capacity;
    this.perMs = perMs;
    this.level = capacity;
    this.at = now;
  }

  refill(now: number): void {
    // A clock that steps back must not refill (nor, with a negative elapsed time, drain) the bucket.
    if (now <= this.at) return;
    this.level = Math.min(this.capacity, this.level + (now - this.at) * this.perMs);
    this.at = now;
  }

  /** Milliseconds until a request of `amount` may be admitted, once `ahead` tokens went to the requests before it. */
  msUntil(amount: number, ahead = 0): number {
    const deficit = ahead + Math.min(amount, this.capacity) - this.level;
    return deficit > 0 ? deficit / this.perMs : 0;
  }

  /** Takes `amount` (negative: gives it back, up to the capacity). */
  take(amount: number): void {
    this.level = Math.min(this.capacity, this.level - amount);
  }

  /** Lowers the level to `ceiling`, if it is above it; never raises it. Says whether it lowered it. */
  cap(ceiling: number): boolean {
    if (ceiling >= this.level) return false;
    this.level = ceiling;
    return true;
  }

  /** What was taken and has not refilled yet. */
  owed(): number {
    return this.capacity === Infinity ? 0 : this.capacity - this.level;
  }
}

/** An absent limit: a bucket that never runs dry (Infinity absorbs every take and refill). */
const unlimited = (now: number) => new Bucket(Infinity, Infinity, now);

/** A queued request; the queue is a doubly linked list of them, so that an abort removes one in O(1). */
interface Waiter {
  readonly tokens: number;
  readonly enqueuedAt: number;
  readonly deadline: number;
  readonly resolve: (reservation: Reservation) => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  prev: Waiter | undefined;
  next: Waiter | undefined;
}

export class LocalLimiter implements Limiter {
  private readonly requests: Bucket;
  private readonly tokens: Bucket;
  private readonly share: number;
  private readonly maxQueue: number;
  private readonly maxWaitMs: number;
  private readonly now: () => number;
  private readonly onWait: ((waitedMs: number, outcome: WaitOutcome) => void) | undefined;
  private readonly onHold: OnHold | undefined;

  private head: Waiter | undefined;
  private tail: Waiter | undefined;
  private depth = 0;
  /** Sum of the queued requests' tokens: what they will take from the token bucket ahead of a newcomer. */
  private queuedTokens = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When `timer` fires; Infinity when there is none. */
  private timerAt = Infinity;
  private readonly tick = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    this.pump();
  };

  constructor({ limits, share = 1, maxQueue = 100, maxWaitMs = 10_000, requestBurst: burst, now = Date.now, onWait, onHold }: LimiterOptions) {
    const start = now();
    const rpm = limits.requestsPerMinute === undefined ? undefined : limits.requestsPerMinute / share;
    const tpm = limits.tokensPerMinute === undefined ? undefined : limits.tokensPerMinute / share;
    this.requests = rpm === undefined ? unlimited(start) : new Bucket(burst ?? requestBurst(rpm), rpm / 60_000, start);
    this.tokens = tpm === undefined ? unlimited(start) : new Bucket(tpm, tpm / 60_000, start);
    this.share = share;
    this.maxQueue = maxQueue;
    this.maxWaitMs = maxWaitMs;
    this.now = now;
    this.onWait = onWait;
    this.onHold = onHold;
  }

  queueDepth(): number {
    return this.depth;
  }

  acquire({ tokens, signal, deadlineMs = Infinity }: AcquireOptions): Promise<Reservation> {
    try {
      checkTokens('tokens', tokens);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return this.refuse('aborted', signal.reason);
    const now = this.now();
    this.refill(now);
    // Never ahead of a waiter: FIFO is what keeps a large request from starving behind a stream of small ones.
    if (this.head === undefined && this.waitForHead(tokens) === 0) {
      this.admit(tokens);
      this.onWait?.(0, 'admitted');
      return Promise.resolve({ tokens, waitedMs: 0 });
    }
    const wait = Math.max(this.requests.msUntil(1, this.depth), this.tokens.msUntil(tokens, this.queuedTokens));
    if (this.depth >= this.maxQueue) return this.refuse('queue_full', new LimiterError('queue_full', Math.ceil(wait)));
    const deadline = Math.min(now + this.maxWaitMs, deadlineMs);
    // The estimate leaves out refunds `settle` may still give back: few LLM requests end within a queue's wait, and
    // failing over now beats waiting to be refused.
    if (now + wait > deadline) return this.refuse('queue_timeout', new LimiterError('queue_timeout', Math.ceil(wait)));

    return new Promise<Reservation>((resolve, reject) => {
      const waiter: Waiter = { tokens, enqueuedAt: now, deadline, resolve, reject, signal, onAbort: undefined, prev: this.tail, next: undefined };
      const first = this.tail === undefined;
      if (this.tail === undefined) this.head = waiter;
      else this.tail.next = waiter;
      this.tail = waiter;
      this.depth++;
      this.queuedTokens += tokens;
      // A waiter behind others changes nothing about when the head is due.
      if (first) this.schedule(now);
      if (signal !== undefined) {
        waiter.onAbort = () => {
          this.remove(waiter);
          waiter.reject(signal.reason);
          this.onWait?.(this.now() - waiter.enqueuedAt, 'aborted');
          this.pump();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
    });
  }

  settle(reservation: Reservation, actualTokens: number): void {
    checkTokens('actualTokens', actualTokens);
    this.tokens.refill(this.now());
    this.tokens.take(actualTokens - reservation.tokens);
    // The reservation is read-only to callers only; the limiter records what it charged.
    (reservation as { tokens: number }).tokens = actualTokens;
    if (this.head !== undefined) this.pump();
  }

  observe(headers: HeaderReader): void {
    const now = this.now();
    const report = shareOfReport(readProviderReport(headers, now), this.share);
    this.refill(now);
    for (const [unit, bucket] of [['requests', this.requests], ['tokens', this.tokens]] as const) {
      const hold = bucket.capacity === Infinity ? undefined : holdFor(unit, report, bucket.perMs);
      if (hold !== undefined && bucket.cap(hold.ceiling)) this.onHold?.(unit, hold);
    }
    // The head's timer may now fire early; the pump it runs finds the bucket short and sets it again.
  }

  /** Takes from the buckets without queueing: what this replica already used elsewhere (see SharedLimiter). */
  charge({ requests, tokens }: Amounts): void {
    this.refill(this.now());
    this.requests.take(requests);
    this.tokens.take(tokens);
  }

  /** What the buckets owe now (taken and not refilled yet), plus what the requests in the queue will take. */
  owed(): Amounts {
    this.refill(this.now());
    return { requests: this.requests.owed() + (this.requests.capacity === Infinity ? 0 : this.depth), tokens: this.tokens.owed() + (this.tokens.capacity === Infinity ? 0 : this.queuedTokens) };
  }

  private refill(now: number): void {
    this.requests.refill(now);
    this.tokens.refill(now);
  }

  /** Milliseconds until a request at the head of the queue may be admitted. */
  private waitForHead(tokens: number): number {
    return Math.max(this.requests.msUntil(1), this.tokens.msUntil(tokens));
  }

  private admit(tokens: number): void {
    this.requests.take(1);
    this.tokens.take(tokens);
  }

  /** Admits from the head while the buckets allow, rejects a head past its deadline, and sets the timer for the rest. */
  private pump(): void {
    const now = this.now();
    this.refill(now);
    for (let waiter = this.head; waiter !== undefined; waiter = this.head) {
      const wait = this.waitForHead(waiter.tokens);
      if (wait === 0) {
        this.remove(waiter);
        this.admit(waiter.tokens);
        waiter.resolve({ tokens: waiter.tokens, waitedMs: now - waiter.enqueuedAt });
        this.onWait?.(now - waiter.enqueuedAt, 'admitted');
      } else if (waiter.deadline <= now) {
        this.remove(waiter);
        waiter.reject(new LimiterError('queue_timeout', Math.ceil(wait)));
        this.onWait?.(now - waiter.enqueuedAt, 'queue_timeout');
      } else break;
    }
    this.schedule(now);
  }

  /** Points the one timer at the head's admission or deadline, whichever comes first; none when the queue is empty. */
  private schedule(now: number): void {
    const head = this.head;
    // Rounded up: a timer that fires a fraction of a millisecond early finds the bucket still short.
    const at = head === undefined ? Infinity : Math.min(head.deadline, now + Math.ceil(this.waitForHead(head.tokens)));
    if (at === this.timerAt) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (at !== Infinity) this.timer = setTimeout(this.tick, at - now);
  }

  private remove(waiter: Waiter): void {
    if (waiter.prev === undefined) this.head = waiter.next;
    else waiter.prev.next = waiter.next;
    if (waiter.next === undefined) this.tail = waiter.prev;
    else waiter.next.prev = waiter.prev;
    waiter.prev = waiter.next = undefined;
    this.depth--;
    this.queuedTokens -= waiter.tokens;
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
  }

  /** Turns a request away before it queued. */
  private refuse(outcome: WaitOutcome, reason: unknown): Promise<never> {
    this.onWait?.(0, outcome);
    return Promise.reject(reason);
  }
}
