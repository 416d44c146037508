/**
 * The budget ledger: what admission asks before a request may spend money, and what it tells afterwards.
 *
 * LiteLLM's budgets overshoot under concurrency because spend is recorded after the check: a hundred requests all
 * see the same remaining budget and all pass. Here admission reserves the request's worst-case cost in the same
 * atomic step as the check (spent + reserved + amount ≤ limit, in every window of every scope, all or nothing), and
 * the reservation is settled to the actual cost when the request ends. Bifrost's budgets overspend N× with N
 * replicas because each keeps its own state; the Redis ledger keeps one state for all replicas, and the resilient
 * ledger bounds what an outage of that state can cost.
 *
 * Amounts are USD at the interface and whole micro-dollars inside (rounded up for spend, down for limits), so sums
 * are exact in Redis and in memory alike.
 */
import type { Budget } from '../../api/schema.js';
import type { BudgetWindow } from './windows.js';

/** The environment's budget or one client's. */
export type ScopeId = 'environment' | `client:${string}`;

export interface BudgetScope {
  id: ScopeId;
  budget: Budget;
}

/** One window of one scope, as it stood when a reservation was made; spend is recorded in this period. */
export interface WindowSpec {
  scope: ScopeId;
  window: BudgetWindow;
  /** The period id: `2026-11-22` or `2026-11`. */
  period: string;
  resetsAt: number;
  /** Undefined when the budget sets no limit for this window: spend is still tracked, for status and metrics. */
  limitMicros: number | undefined;
  budget: Budget;
}

export interface Reservation {
  readonly id: string;
  readonly amountMicros: number;
  /** When an unsettled reservation stops holding budget (a gateway that crashed mid-request never settles). */
  readonly expiresAt: number;
  readonly windows: readonly WindowSpec[];
}

export interface Exceeded {
  scope: ScopeId;
  window: BudgetWindow;
  limitUSD: number;
  spentUSD: number;
  reservedUSD: number;
  /** Epoch milliseconds: when this window's budget resets (a client's Retry-After). */
  resetsAt: number;
  onExhausted: Budget['onExhausted'];
  degradeTo?: string;
}

export type ReserveResult = { ok: true; reservation: Reservation } | { ok: false; exceeded: Exceeded };

export interface Spent {
  dailyUSD: number;
  monthlyUSD: number;
  /** Held by unsettled reservations made in the current UTC day. */
  reservedUSD: number;
}

export interface ThresholdCrossing {
  scope: ScopeId;
  window: BudgetWindow;
  period: string;
  /** The `alertAt` fraction crossed. */
  fraction: number;
  spentUSD: number;
  limitUSD: number;
}

/** Called once per `alertAt` fraction and window period, by the settle whose spend crossed it. */
export type OnThreshold = (crossing: ThresholdCrossing) => void;

export interface Ledger {
  /**
   * Reserves `amountUSD` in every window of every scope, or nothing. `holdMs` bounds how long an unsettled
   * reservation holds budget: the request's longest possible duration plus a margin.
   */
  reserve(scopes: readonly BudgetScope[], amountUSD: number, now: number, holdMs?: number): Promise<ReserveResult>;
  /** Releases the reservation and records `actualUSD` in the periods it was made in. Once per reservation. */
  settle(reservation: Reservation, actualUSD: number, now: number): Promise<void>;
  spent(scope: BudgetScope, now: number): Promise<Spent>;
}

/** The longest request is one hour (`timeouts.totalSeconds` ≤ 3600); a minute of margin for settling. */
export const DEFAULT_MAX_HOLD_MS = 3_660_000;
