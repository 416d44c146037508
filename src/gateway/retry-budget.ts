/**
 * A retry budget (Finagle's RetryBudget, Envoy's retry_budget): retries may add at most `budgetPercent` to the
 * requests of the last few seconds, so an outage cannot multiply the traffic sent to a provider that is already
 * failing. A small minimum per window lets a quiet gateway still retry the odd failure.
 *
 * Also home to `SlidingWindow`, the bucketed counter the circuit breaker shares.
 */

export interface SlidingWindowOptions {
  /** Independent counters kept per slot (e.g. requests and failures). */
  lanes: number;
  /** Slots in the ring: the window is `slots * slotMs` long, moving one slot at a time. */
  slots: number;
  slotMs: number;
  now: () => number;
}

/**
 * Counts over a sliding window, in a ring of time slots: adding and summing are O(1) (a clock jump clears at most
 * `slots` slots) and memory is fixed. Old counts leave a slot at a time, so the window covers between
 * `(slots - 1) * slotMs` and `slots * slotMs` of history.
 */
export class SlidingWindow {
  private readonly lanes: number;
  private readonly slots: number;
  private readonly slotMs: number;
  private readonly now: () => number;
  /** `counts[slot * lanes + lane]`. */
  private readonly counts: Float64Array;
  /** Per lane, the sum over all slots, kept as counts enter and leave so that reading it is O(1). */
  private readonly sums: Float64Array;
  /** The absolute number (`time / slotMs`) of the newest slot. */
  private newest: number;

  constructor({ lanes, slots, slotMs, now }: SlidingWindowOptions) {
    this.lanes = lanes;
    this.slots = slots;
    this.slotMs = slotMs;
    this.now = now;
    this.counts = new Float64Array(lanes * slots);
    this.sums = new Float64Array(lanes);
    this.newest = Math.floor(now() / slotMs);
  }

  add(lane: number, n = 1): void {
    const index = this.advance() * this.lanes + lane;
    this.counts[index] = (this.counts[index] ?? 0) + n;
    this.sums[lane] = (this.sums[lane] ?? 0) + n;
  }

  sum(lane: number): number {
    this.advance();
    return this.sums[lane] ?? 0;
  }

  clear(): void {
    this.counts.fill(0);
    this.sums.fill(0);
  }

  /** Empties the slots the clock has moved past and returns the ring index of the current slot. */
  private advance(): number {
    const current = Math.floor(this.now() / this.slotMs);
    if (current > this.newest) {
      const expired = Math.min(current - this.newest, this.slots);
      for (let step = 1; step <= expired; step++) {
        const base = ((this.newest + step) % this.slots) * this.lanes;
        for (let lane = 0; lane < this.lanes; lane++) {
          this.sums[lane] = (this.sums[lane] ?? 0) - (this.counts[base + lane] ?? 0);
          this.counts[base + lane] = 0;
        }
      }
      this.newest = current;
    }
    // A clock that steps back keeps counting into the newest slot rather than into one already recycled.
    return this.newest % this.slots;
  }
}

export interface RetryBudgetOptions {
  /** Retries allowed as a percentage of the requests in the window (`spec.retry.budgetPercent`). */
  budgetPercent: number;
  /** Retries allowed per window however few requests there were. */
  minRetries?: number;
  windowMs?: number;
  /** Granularity of the window. */
  slotMs?: number;
  now?: () => number;
}

const REQUESTS = 0;
const RETRIES = 1;

export class RetryBudget {
  private readonly percent: number;
  private readonly minRetries: number;
  private readonly window: SlidingWindow;

  constructor({ budgetPercent, minRetries = 3, windowMs = 10_000, slotMs = 1000, now = Date.now }: RetryBudgetOptions) {
    this.percent = budgetPercent;
    this.minRetries = minRetries;
    this.window = new SlidingWindow({ lanes: 2, slots: Math.max(1, Math.round(windowMs / slotMs)), slotMs, now });
  }

  /** Counts one client request (not one attempt: retries must not earn themselves more budget). */
  recordRequest(): void {
    this.window.add(REQUESTS);
  }

  /** Takes one retry from the budget if it has one left; a `false` means fail over (or fail) instead of retrying. */
  tryAcquireRetry(): boolean {
    const retries = this.window.sum(RETRIES);
    // Multiplied out rather than divided, so that 10% of 30 requests is exactly 3 retries.
    if (retries >= this.minRetries && (retries + 1) * 100 > this.window.sum(REQUESTS) * this.percent) return false;
    this.window.add(RETRIES);
    return true;
  }
}
