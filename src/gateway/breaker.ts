/**
 * A circuit breaker per provider and model. Closed: requests flow and their outcomes are counted over a sliding
 * window. Open, once enough of them failed: requests are refused at once, so an outage costs no doomed calls and no
 * waiting, and the fallback chain takes over. Half-open, after `openSeconds`: a few probes go through; enough
 * successes close the breaker and traffic returns to the primary, a failure opens it again.
 *
 * Which outcomes count is the caller's decision: failures whose class has `breaker: true` in `POLICIES` are
 * failures; anything that says nothing about the provider's health (a client mistake, a client that went away) is
 * released, counted neither way.
 */
import type { GatewayConfig } from '../api/gateway-config.js';
import { SlidingWindow } from './retry-budget.js';

export type BreakerSettings = GatewayConfig['circuitBreaker'];

export type BreakerState = 'closed' | 'open' | 'half_open';

/** The state as a gauge value. */
export const BREAKER_GAUGE: Readonly<Record<BreakerState, number>> = { closed: 0, open: 1, half_open: 2 };

export type TransitionReason =
  /** Closed → open: the window's failure ratio reached `failureRatio` over at least `minRequests`. */
  | 'failure_ratio'
  /** Open → half-open: `openSeconds` passed. */
  | 'open_elapsed'
  /** Half-open → open. */
  | 'probe_failed'
  /** Half-open → closed. */
  | 'probes_succeeded'
  /** Any → closed: the breaker settings changed and the breaker was replaced by a fresh one. */
  | 'reloaded';

export interface Transition {
  from: BreakerState;
  to: BreakerState;
  reason: TransitionReason;
}

export interface BreakerOptions {
  settings: BreakerSettings;
  now?: () => number;
  /** Called on every state change, for logs and metrics. */
  onTransition?: (transition: Transition) => void;
  /** Probes in flight at once while half-open. */
  probes?: number;
  /** Successful probes that close the breaker. */
  successesToClose?: number;
  /**
   * A probe that reported nothing for this long is taken as lost (its caller never called success, failure or
   * release), so that one bug cannot hold the breaker half-open and refusing forever. The default is the default
   * total timeout of a request: no honest probe takes longer.
   */
  probeTimeoutMs?: number;
}

/** Slots of the sliding window: it moves in steps of a tenth of `windowSeconds`, whatever its length. */
const WINDOW_SLOTS = 10;
const REQUESTS = 0;
const FAILURES = 1;

export class CircuitBreaker {
  private readonly failureRatio: number;
  private readonly minRequests: number;
  private readonly openMs: number;
  private readonly now: () => number;
  private readonly onTransition: ((transition: Transition) => void) | undefined;
  private readonly maxProbes: number;
  private readonly successesToClose: number;
  private readonly probeTimeoutMs: number;
  private readonly window: SlidingWindow;

  private current: BreakerState = 'closed';
  private openedAt = 0;
  private probesInFlight = 0;
  private lastProbeAt = 0;
  private probeSuccesses = 0;

  constructor({ settings, now = Date.now, onTransition, probes = 1, successesToClose = 3, probeTimeoutMs = 120_000 }: BreakerOptions) {
    this.failureRatio = settings.failureRatio;
    this.minRequests = settings.minRequests;
    this.openMs = settings.openSeconds * 1000;
    this.now = now;
    this.onTransition = onTransition;
    this.maxProbes = probes;
    this.successesToClose = successesToClose;
    this.probeTimeoutMs = probeTimeoutMs;
    this.window = new SlidingWindow({ lanes: 2, slots: WINDOW_SLOTS, slotMs: (settings.windowSeconds * 1000) / WINDOW_SLOTS, now });
  }

  /** The current state; an open breaker whose `openSeconds` have passed becomes half-open when looked at. */
  get state(): BreakerState {
    if (this.current === 'open' && this.now() - this.openedAt >= this.openMs) this.transition('half_open', 'open_elapsed');
    return this.current;
  }

  get gauge(): number {
    return BREAKER_GAUGE[this.state];
  }

  /**
   * Whether a request may go to this provider and model. When half-open, a `true` makes the request a probe: its
   * caller must report it with `success`, `failure` or `release`, as every admitted request should be.
   */
  allow(): boolean {
    switch (this.state) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half_open': {
        const now = this.now();
        if (this.probesInFlight >= this.maxProbes) {
          if (now - this.lastProbeAt < this.probeTimeoutMs) return false;
          this.probesInFlight = 0;
        }
        this.probesInFlight++;
        this.lastProbeAt = now;
        return true;
      }
    }
  }

  success(): void {
    switch (this.state) {
      case 'closed':
        this.window.add(REQUESTS);
        return;
      case 'half_open':
        this.probeReturned();
        if (++this.probeSuccesses >= this.successesToClose) this.transition('closed', 'probes_succeeded');
        return;
      case 'open':
        // A request admitted before the breaker opened: the window that opened it is already judged.
        return;
    }
  }

  failure(): void {
    switch (this.state) {
      case 'closed': {
        this.window.add(REQUESTS);
        this.window.add(FAILURES);
        const requests = this.window.sum(REQUESTS);
        // Divided, not multiplied out: 3 / 30 is exactly the double nearest 0.1, while 0.1 * 30 is not 3.
        if (requests >= this.minRequests && this.window.sum(FAILURES) / requests >= this.failureRatio) this.transition('open', 'failure_ratio');
        return;
      }
      case 'half_open':
        this.transition('open', 'probe_failed');
        return;
      case 'open':
        return;
    }
  }

  /** Ends an admitted request whose outcome says nothing about the provider's health: it frees a probe slot. */
  release(): void {
    if (this.state === 'half_open') this.probeReturned();
  }

  private probeReturned(): void {
    // Floored: a request admitted while closed may end while half-open, and it held no probe slot.
    this.probesInFlight = Math.max(0, this.probesInFlight - 1);
  }

  private transition(to: BreakerState, reason: TransitionReason): void {
    const from = this.current;
    this.current = to;
    if (to === 'open') this.openedAt = this.now();
    if (to === 'half_open') {
      this.probesInFlight = 0;
      this.probeSuccesses = 0;
    }
    // The failures that opened the breaker must not open it again the moment it closes.
    if (to === 'closed') this.window.clear();
    this.onTransition?.({ from, to, reason });
  }
}

export interface KeyedTransition extends Transition {
  /** `${provider}/${model}`. */
  key: string;
}

export interface BreakerRegistryOptions extends Omit<BreakerOptions, 'settings' | 'onTransition'> {
  onTransition?: (transition: KeyedTransition) => void;
}

function sameSettings(a: BreakerSettings, b: BreakerSettings): boolean {
  return a.failureRatio === b.failureRatio && a.minRequests === b.minRequests && a.windowSeconds === b.windowSeconds && a.openSeconds === b.openSeconds;
}

/**
 * The breakers of one gateway, one per provider and model, created on first use. Memory is bounded by the
 * (provider, model) pairs of the configs loaded, which the config schema bounds in turn.
 */
export class BreakerRegistry {
  private readonly breakers = new Map<string, CircuitBreaker>();
  private settings: BreakerSettings;
  private readonly options: BreakerRegistryOptions;

  constructor(settings: BreakerSettings, options: BreakerRegistryOptions = {}) {
    this.settings = settings;
    this.options = options;
  }

  get(provider: string, model: string): CircuitBreaker {
    const key = `${provider}/${model}`;
    let breaker = this.breakers.get(key);
    if (breaker === undefined) {
      const { onTransition, ...options } = this.options;
      breaker = new CircuitBreaker({
        ...options,
        settings: this.settings,
        onTransition: onTransition && ((transition) => onTransition({ key, ...transition })),
      });
      this.breakers.set(key, breaker);
    }
    return breaker;
  }

  /**
   * Applies a reloaded config's breaker settings. When they changed, every breaker is dropped and recreated closed
   * on next use: counts gathered under the old ratio and window do not mean the same under the new ones. Breakers
   * that were not closed report the change as a transition, so that gauges and logs follow.
   */
  reload(settings: BreakerSettings): void {
    if (sameSettings(this.settings, settings)) return;
    this.settings = settings;
    for (const [key, breaker] of this.breakers) {
      const from = breaker.state;
      if (from !== 'closed') this.options.onTransition?.({ key, from, to: 'closed', reason: 'reloaded' });
    }
    this.breakers.clear();
  }

  /** Every breaker by key, for a metrics collector that reports the gauges at scrape time. */
  entries(): IterableIterator<[string, CircuitBreaker]> {
    return this.breakers.entries();
  }
}
