/**
 * The ledger of a single replica without Redis (the embedded default), and the local share of the resilient ledger
 * during a Redis outage. Every operation runs to completion without yielding, so check and reservation are atomic
 * by construction. The `...Now` methods are the synchronous core, for callers that must update their own
 * bookkeeping in the same step; the Ledger methods wrap them.
 */
import { randomUUID } from 'node:crypto';
import { crossedFractions, exceededOf, microsUp, usdOf, windowSpecs, type WindowState } from './decide.js';
import {
  DEFAULT_MAX_HOLD_MS,
  type BudgetScope,
  type Ledger,
  type OnThreshold,
  type Reservation,
  type ReserveResult,
  type ScopeId,
  type Spent,
  type WindowSpec,
} from './ledger.js';

export interface SeededSpend {
  scope: ScopeId;
  period: string;
  spentUSD: number;
}

export interface MemoryLedgerOptions {
  onThreshold?: OnThreshold;
  maxHoldMs?: number;
  /** Spend that happened elsewhere and counts here: what a replica carries into a Redis outage. */
  seed?: readonly SeededSpend[];
}

/** Expired reservations are looked for at most this often, so admission does not scan every open one each time. */
const SWEEP_EVERY_MS = 1000;
/** A past period is forgotten this long after it ended, once nothing is reserved in it (late settles still land). */
const KEEP_PAST_MS = 24 * 3600_000;

interface Counter extends WindowState {
  resetsAt: number;
}

export class MemoryLedger implements Ledger {
  private readonly counters = new Map<string, Counter>();
  private readonly open = new Map<string, Reservation>();
  private readonly settled = new WeakSet<Reservation>();
  private readonly onThreshold: OnThreshold | undefined;
  private readonly maxHoldMs: number;
  private nextSweepAt = -Infinity;

  constructor(options: MemoryLedgerOptions = {}) {
    this.onThreshold = options.onThreshold;
    this.maxHoldMs = options.maxHoldMs ?? DEFAULT_MAX_HOLD_MS;
    // Seeded counters are never pruned (when their period resets is not known here): a local share lasts one outage.
    for (const { scope, period, spentUSD } of options.seed ?? []) {
      this.counters.set(`${scope}|${period}`, { spentMicros: microsUp(spentUSD), reservedMicros: 0, resetsAt: Infinity });
    }
  }

  async reserve(scopes: readonly BudgetScope[], amountUSD: number, now: number, holdMs?: number): Promise<ReserveResult> {
    return this.reserveNow(scopes, amountUSD, now, holdMs);
  }

  async settle(reservation: Reservation, actualUSD: number, _now: number): Promise<void> {
    this.settleNow(reservation, actualUSD);
  }

  async spent(scope: BudgetScope, now: number): Promise<Spent> {
    return this.spentNow(scope, now);
  }

  reserveNow(scopes: readonly BudgetScope[], amountUSD: number, now: number, holdMs = this.maxHoldMs, id: string = randomUUID()): ReserveResult {
    this.sweep(now);
    const specs = windowSpecs(scopes, now);
    const amountMicros = microsUp(amountUSD);
    const counters = specs.map((spec) => this.counter(spec));
    const exceeded = exceededOf(specs, counters, amountMicros);
    if (exceeded) return { ok: false, exceeded };
    for (const counter of counters) counter.reservedMicros += amountMicros;
    const reservation: Reservation = { id, amountMicros, expiresAt: now + Math.min(holdMs, this.maxHoldMs), windows: specs };
    this.open.set(reservation.id, reservation);
    return { ok: true, reservation };
  }

  settleNow(reservation: Reservation, actualUSD: number): void {
    if (this.settled.has(reservation)) throw new Error(`budget reservation ${reservation.id} settled twice`);
    this.settled.add(reservation);
    // An expired reservation was released by the sweep; its spend still counts.
    if (this.open.delete(reservation.id)) this.release(reservation);
    const actualMicros = microsUp(actualUSD);
    for (const spec of reservation.windows) {
      const counter = this.counter(spec);
      const before = counter.spentMicros;
      counter.spentMicros += actualMicros;
      for (const fraction of crossedFractions(spec.budget.alertAt, spec.limitMicros, before, counter.spentMicros)) {
        this.onThreshold?.({ scope: spec.scope, window: spec.window, period: spec.period, fraction, spentUSD: usdOf(counter.spentMicros), limitUSD: usdOf(spec.limitMicros ?? 0) });
      }
    }
  }

  spentNow(scope: BudgetScope, now: number): Spent {
    this.sweep(now);
    const [daily, monthly] = windowSpecs([scope], now).map((spec) => this.counters.get(`${spec.scope}|${spec.period}`));
    return { dailyUSD: usdOf(daily?.spentMicros ?? 0), monthlyUSD: usdOf(monthly?.spentMicros ?? 0), reservedUSD: usdOf(daily?.reservedMicros ?? 0) };
  }

  private counter(spec: WindowSpec): Counter {
    const key = `${spec.scope}|${spec.period}`;
    let counter = this.counters.get(key);
    if (counter === undefined) {
      counter = { spentMicros: 0, reservedMicros: 0, resetsAt: spec.resetsAt };
      this.counters.set(key, counter);
    }
    return counter;
  }

  private release(reservation: Reservation): void {
    for (const spec of reservation.windows) this.counter(spec).reservedMicros -= reservation.amountMicros;
  }

  private sweep(now: number): void {
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + SWEEP_EVERY_MS;
    for (const reservation of this.open.values()) {
      if (reservation.expiresAt > now) continue;
      this.open.delete(reservation.id);
      this.release(reservation);
    }
    for (const [key, counter] of this.counters) {
      if (counter.reservedMicros === 0 && counter.resetsAt + KEEP_PAST_MS < now) this.counters.delete(key);
    }
  }
}
