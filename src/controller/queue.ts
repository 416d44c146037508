/**
 * A keyed work queue with client-go's guarantees (k8s.io/client-go/util/workqueue):
 * - a key waits in the queue at most once, however often it is added (the dirty set);
 * - a key is handed to one worker at a time: added again while being processed, it waits until `done` (the
 *   processing set), so a reconcile never runs concurrently with itself and never misses a change that arrived
 *   during it;
 * - delayed adds keep the earliest time asked for, and rate-limited adds take their delay from a RateLimiter.
 */
import { defaultControllerRateLimiter, type RateLimiter } from './rate-limiter.js';

export class WorkQueue<K extends string> {
  private readonly queue: K[] = [];
  /** Keys that need processing: waiting in `queue`, or to be re-queued when their worker calls `done`. */
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly delayed = new Map<K, { at: number; timer: NodeJS.Timeout }>();
  private readonly getters: Array<(key: K | undefined) => void> = [];
  private readonly drainWaiters: Array<() => void> = [];
  private shuttingDown = false;
  private readonly rateLimiter: RateLimiter;

  constructor({ rateLimiter = defaultControllerRateLimiter() }: { rateLimiter?: RateLimiter } = {}) {
    this.rateLimiter = rateLimiter;
  }

  add(key: K): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.handOut();
  }

  /** Adds `key` after `ms`; if it is already scheduled for earlier, that earlier time wins. */
  addAfter(key: K, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = performance.now() + ms;
    const scheduled = this.delayed.get(key);
    if (scheduled && scheduled.at <= at) return;
    if (scheduled) clearTimeout(scheduled.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    // A pending retry alone is no reason to keep the process running.
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  addRateLimited(key: K): void {
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** The key was handled successfully: reset its backoff. */
  forget(key: K): void {
    this.rateLimiter.forget(key);
  }

  retries(key: K): number {
    return this.rateLimiter.retries(key);
  }

  /** The next key, marked as processing until `done(key)`; `undefined` once the queue is shut down. */
  get(): Promise<K | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.startProcessing(key));
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(key: K): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) {
      this.queue.push(key);
      this.handOut();
    }
    if (this.processing.size === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  /** Keys waiting to be processed (not the delayed ones, nor those being processed): the queue depth metric. */
  len(): number {
    return this.queue.length;
  }

  /** Stops at once: getters receive `undefined`, waiting and delayed keys are dropped, new keys are ignored. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.dirty.clear();
    for (const resolve of this.getters.splice(0)) resolve(undefined);
  }

  /**
   * `shutDown`, then waits until every key being processed is `done`: e.g. before releasing a leader lease, so that
   * no reconcile of this replica overlaps one of the next leader's.
   */
  async shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size > 0) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  private startProcessing(key: K): K {
    this.processing.add(key);
    this.dirty.delete(key);
    return key;
  }

  private handOut(): void {
    while (this.getters.length > 0 && this.queue.length > 0) {
      this.getters.shift()!(this.startProcessing(this.queue.shift()!));
    }
  }
}

export type Handler<K extends string> = (key: K) => Promise<{ requeueAfterMs?: number } | void>;

/**
 * Runs `workers` loops that take keys from `queue` until it shuts down: a failure re-queues the key with backoff (and
 * goes to `onError`), a success resets the key's backoff and re-queues it if the handler asked to be called again.
 * Resolves when every worker has stopped.
 */
export async function runWorkers<K extends string>(
  queue: WorkQueue<K>,
  workers: number,
  handler: Handler<K>,
  onError: (key: K, error: unknown) => void,
): Promise<void> {
  const work = async () => {
    for (let key = await queue.get(); key !== undefined; key = await queue.get()) {
      try {
        const result = await handler(key);
        queue.forget(key);
        if (result?.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (error) {
        queue.addRateLimited(key);
        onError(key, error);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, work));
}
