/**
 * The ledgers' decisions as pure functions, shared by the in-memory ledger and the resilient one; the Redis ledger
 * makes the same admission check inside its Lua script (it must be atomic there) and uses these to explain it.
 */
import type { Budget } from '../../api/schema.js';
import type { BudgetScope, Exceeded, WindowSpec } from './ledger.js';
import { periodOf, WINDOWS } from './windows.js';

const MICROS_PER_USD = 1_000_000;
// Float products such as 0.1 × 1e6 land a hair off a whole number; round those to it before rounding up or down.
const EPSILON = 1e-6;

/** Spend and reservations in whole micro-dollars, rounded up: a budget never counts less than was spent. */
export const microsUp = (usd: number): number => Math.max(0, Math.ceil(usd * MICROS_PER_USD - EPSILON));
/** Limits in whole micro-dollars, rounded down: a budget never allows more than was set. */
export const microsDown = (usd: number): number => Math.max(0, Math.floor(usd * MICROS_PER_USD + EPSILON));
export const usdOf = (micros: number): number => micros / MICROS_PER_USD;

/** Every window of every scope, in order; both windows are tracked even when only one has a limit. */
export function windowSpecs(scopes: readonly BudgetScope[], now: number): WindowSpec[] {
  return scopes.flatMap(({ id, budget }) =>
    WINDOWS.map((window) => {
      const period = periodOf(window, now);
      const limit = budget[window];
      return { scope: id, window, period: period.id, resetsAt: period.resetsAt, limitMicros: limit === undefined ? undefined : microsDown(limit), budget };
    }),
  );
}

export interface WindowState {
  spentMicros: number;
  reservedMicros: number;
}

export function fits(spec: WindowSpec, state: WindowState, amountMicros: number): boolean {
  return spec.limitMicros === undefined || state.spentMicros + state.reservedMicros + amountMicros <= spec.limitMicros;
}

/**
 * The window that refuses a reservation, or undefined when every window has room. Of several, the one that resets
 * last: it is what actually blocks, so its reset is the honest Retry-After (a daily window that resets tonight does
 * not help while the month is spent). Ties go to the first scope, in the order given.
 */
export function exceededOf(specs: readonly WindowSpec[], states: readonly WindowState[], amountMicros: number): Exceeded | undefined {
  let worst: { spec: WindowSpec; state: WindowState } | undefined;
  for (const [i, spec] of specs.entries()) {
    const state = states[i] ?? { spentMicros: 0, reservedMicros: 0 };
    if (fits(spec, state, amountMicros)) continue;
    if (worst === undefined || spec.resetsAt > worst.spec.resetsAt) worst = { spec, state };
  }
  if (worst === undefined) return undefined;
  const { spec, state } = worst;
  return {
    scope: spec.scope,
    window: spec.window,
    limitUSD: usdOf(spec.limitMicros ?? 0),
    spentUSD: usdOf(state.spentMicros),
    reservedUSD: usdOf(state.reservedMicros),
    resetsAt: spec.resetsAt,
    onExhausted: spec.budget.onExhausted,
    ...(spec.budget.degradeTo !== undefined ? { degradeTo: spec.budget.degradeTo } : {}),
  };
}

/**
 * The `alertAt` fractions that spend going from `before` to `after` crossed. Spend only grows, and each increment
 * is applied atomically, so exactly one settle crosses each fraction of a window: no marker is needed to report it
 * once.
 */
export function crossedFractions(alertAt: readonly number[], limitMicros: number | undefined, beforeMicros: number, afterMicros: number): number[] {
  if (limitMicros === undefined) return [];
  return alertAt.filter((fraction) => beforeMicros < fraction * limitMicros && afterMicros >= fraction * limitMicros);
}

/** A replica's conservative share of a budget when replicas cannot share state: each limit over the replica count. */
export function localShare(budget: Budget, replicas: number): Budget {
  const n = Math.max(1, Math.floor(replicas));
  return {
    ...budget,
    ...(budget.daily !== undefined ? { daily: budget.daily / n } : {}),
    ...(budget.monthly !== undefined ? { monthly: budget.monthly / n } : {}),
  };
}
