/**
 * # Budgets when Redis is out of reach
 *
 * Budgets are enforced in Redis, shared by every replica. When a Redis command fails (connection refused or lost,
 * a time-out, Redis refusing the script), the replica falls back at once to a local share: it neither waits for
 * Redis nor lets traffic through unchecked.
 *
 * - **Local share.** Each limit is divided by the number of live replicas the heartbeat last saw, and never by
 *   fewer than `minReplicas`, the configured replica count, which is all a replica that never reached Redis knows
 *   (the gateway passes the compiled config's `replicas`). The spend last seen in Redis carries over as this
 *   replica's part of it (spend / replicas), so the share is of what was left, not a fresh budget. N replicas each
 *   holding limit / N hold the budget together without talking to each other; uneven traffic makes a busy replica
 *   refuse early, which is the safe direction.
 * - **Visible.** `degraded` is true and `onDegraded(true)` is called (an alert watches the metric it feeds);
 *   `onDegraded(false)` once budgets are back in Redis.
 * - **No spend lost.** Every settle gets a sequence number of this replica before it is sent. Settles Redis did not
 *   confirm, including one in flight when the connection broke (which may or may not have been applied), are kept
 *   in memory in number order, as is every settle during the outage.
 * - **None counted twice.** Redis keeps the highest number it applied from each replica and applies a settle only
 *   above it. It executes one connection's commands in order, and this ledger writes every kept settle, in number
 *   order, before anything new. So a replayed settle that had been applied is skipped, and every other one is
 *   counted once. A settle Redis refused with an error (OOM, say) was not applied: it is numbered again, last.
 * - **Return.** Redis is probed every `probeMs`. Once it answers, kept settles are replayed in batches while
 *   traffic is still served from the local share, until few are left; the rest go out in one last batch, after
 *   the reservations granted locally and still open, which are handed to Redis (held without a limit check: the
 *   money is committed) so they count against the budget until they settle. Budgets go back to Redis in the same
 *   step, so nothing reaches Redis before that batch. Waiting for nothing to be left instead would never end under
 *   load. A local reservation settled after the return is settled in Redis like any other, releasing its hold; a
 *   Redis reservation made before the outage and settled during it is released by the replay (or had expired: its
 *   spend counts all the same). If the last batch fails, what it did not confirm is kept and the ledger falls back
 *   again.
 * - **Lost replies.** A reservation Redis applied but whose reply was lost is granted again locally under the same
 *   id: the hand-over finds it already held, and its settle releases it.
 * - **Alerts.** Thresholds crossed during the outage are reported against the local share, an estimate of the whole
 *   that assumes even traffic, and not again when the replay crosses the same fraction in Redis. During an outage
 *   each replica reports its own.
 * - **Limits.** Settles kept in memory are lost if the replica itself dies during the outage (at most its share).
 *   Sequence marks last a week: a replica cut off for longer may count twice the few settles in flight when the
 *   outage began. A Redis that loses acknowledged writes loses that spend: without persistence, on failover to a
 *   lagging replica, or on a crash with `appendfsync everysec` (up to a second of it). Run it with
 *   `appendonly yes` and `appendfsync always`.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../log.js';
import { localShare, microsDown, usdOf, windowSpecs } from './decide.js';
import {
  DEFAULT_MAX_HOLD_MS,
  type BudgetScope,
  type Ledger,
  type OnThreshold,
  type Reservation,
  type ReserveResult,
  type Spent,
  type ThresholdCrossing,
  type WindowSpec,
} from './ledger.js';
import { MemoryLedger } from './memory-ledger.js';
import type { RedisLedger, Replayed, SpendEntry } from './redis-ledger.js';

export interface ResilientLedgerOptions {
  redis: RedisLedger;
  onThreshold?: OnThreshold;
  /** True when budgets fall back to the local share, false when they are back in Redis. */
  onDegraded?: (degraded: boolean) => void;
  /**
   * Floor of the replica count: the configured replicas. A replica that never reached Redis has seen no heartbeat,
   * and one that did may have missed a replica that just started.
   */
  minReplicas?: number;
  /** How often to try Redis again while degraded. */
  probeMs?: number;
  maxHoldMs?: number;
  log?: Logger;
  now?: () => number;
}

interface LocalShare {
  ledger: MemoryLedger;
  replicas: number;
}

/** A reservation granted from the local share: as the local ledger holds it, and as the caller and Redis see it. */
interface Grant {
  local: Reservation;
  shared: Reservation;
  handedOver: boolean;
}

/** Settles replayed per round trip while catching up; what is left at the end goes out with the switch. */
const RECOVERY_BATCH = 500;

/** Redis answered with an error: the command was not applied (as opposed to a lost connection, which may have been). */
const refusedByRedis = (error: unknown) => error instanceof Error && error.name === 'ReplyError';

/** A window as the local share sees it: the same period, 1/replicas of the limit. */
function shareOf(spec: WindowSpec, replicas: number): WindowSpec {
  return { ...spec, limitMicros: spec.limitMicros === undefined ? undefined : Math.floor(spec.limitMicros / replicas), budget: localShare(spec.budget, replicas) };
}

export class ResilientLedger implements Ledger {
  private readonly redis: RedisLedger;
  private readonly onThreshold: OnThreshold | undefined;
  private readonly onDegraded: ((degraded: boolean) => void) | undefined;
  private readonly minReplicas: number;
  private readonly probeMs: number;
  private readonly maxHoldMs: number;
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  /** Defined exactly while degraded. */
  private local: LocalShare | undefined;
  /** Settles Redis has not confirmed, in sequence order. */
  private readonly pending: SpendEntry[] = [];
  private readonly grants = new Map<string, Grant>();
  private readonly settled = new WeakSet<Reservation>();
  /** Fractions reported, per `scope|window|period`; ended periods are dropped. */
  private readonly reported = new Map<string, Set<number>>();
  private probe: ReturnType<typeof setInterval> | undefined;
  private recovering = false;

  constructor(options: ResilientLedgerOptions) {
    this.redis = options.redis;
    this.onThreshold = options.onThreshold;
    this.onDegraded = options.onDegraded;
    this.minReplicas = options.minReplicas ?? 1;
    this.probeMs = options.probeMs ?? 1000;
    this.maxHoldMs = options.maxHoldMs ?? DEFAULT_MAX_HOLD_MS;
    this.log = options.log;
    this.now = options.now ?? Date.now;
  }

  get degraded(): boolean {
    return this.local !== undefined;
  }

  async reserve(scopes: readonly BudgetScope[], amountUSD: number, now: number, holdMs?: number): Promise<ReserveResult> {
    // One id for both attempts: if Redis applied the reservation but its reply was lost, the local grant's settle
    // (or its hand-over) finds and releases it there, rather than it holding budget until it expires.
    const id = randomUUID();
    let local = this.local;
    if (local === undefined) {
      try {
        return await this.redis.reserve(scopes, amountUSD, now, holdMs, id);
      } catch (error) {
        local = this.degrade(error);
      }
    }
    // No await from here on: a recovery finishing in between would miss this grant.
    const result = local.ledger.reserveNow(scopes.map((scope) => ({ id: scope.id, budget: localShare(scope.budget, local.replicas) })), amountUSD, now, holdMs, id);
    if (!result.ok) return result;
    // The caller (and Redis, after the return) sees the real limits; only the local ledger knows the share.
    const shared: Reservation = { ...result.reservation, windows: windowSpecs(scopes, now) };
    this.grants.set(shared.id, { local: result.reservation, shared, handedOver: false });
    return { ok: true, reservation: shared };
  }

  async settle(reservation: Reservation, actualUSD: number, now: number): Promise<void> {
    if (this.settled.has(reservation)) throw new Error(`budget reservation ${reservation.id} settled twice`);
    this.settled.add(reservation);
    const grant = this.grants.get(reservation.id);
    this.grants.delete(reservation.id);
    const entry = this.redis.spendEntry(reservation, actualUSD);
    if (this.local === undefined) {
      try {
        this.report(await this.redis.record(entry, now));
        return;
      } catch (error) {
        this.keep(refusedByRedis(error) ? this.redis.spendEntry(reservation, actualUSD) : entry);
        this.settleLocally(this.degrade(error), reservation, grant, actualUSD);
        return;
      }
    }
    this.keep(entry);
    this.settleLocally(this.local, reservation, grant, actualUSD);
  }

  async spent(scope: BudgetScope, now: number): Promise<Spent> {
    if (this.local === undefined) {
      try {
        return await this.redis.spent(scope, now);
      } catch (error) {
        this.degrade(error);
      }
    }
    return this.estimateSpent(scope, now);
  }

  /**
   * While degraded: the local share as this replica enforces it, times the replica count, so that it reads as the
   * whole budget if every replica spends alike (what the budget gauges show). Undefined while budgets are in Redis.
   */
  shareSpent(scope: BudgetScope, now: number): Spent | undefined {
    const local = this.local;
    if (local === undefined) return undefined;
    const share = local.ledger.spentNow({ id: scope.id, budget: localShare(scope.budget, local.replicas) }, now);
    return { dailyUSD: share.dailyUSD * local.replicas, monthlyUSD: share.monthlyUSD * local.replicas, reservedUSD: share.reservedUSD * local.replicas };
  }

  /** Stops probing. The Redis ledger and its client belong to the caller. */
  close(): void {
    clearInterval(this.probe);
    this.probe = undefined;
  }

  /** Switches to the local share, once per outage. */
  private degrade(error: unknown): LocalShare {
    if (this.local !== undefined) return this.local;
    const replicas = Math.max(1, this.minReplicas, this.redis.liveReplicas());
    const seed = this.redis.lastKnownSpent().map((known) => ({ ...known, spentUSD: known.spentUSD / replicas }));
    this.local = { ledger: new MemoryLedger({ maxHoldMs: this.maxHoldMs, seed, onThreshold: (crossing) => this.report([crossing]) }), replicas };
    this.log?.('warn', 'budgets: Redis is out of reach, enforcing a local share of each budget', { replicas, error: String(error) });
    this.onDegraded?.(true);
    this.probe = setInterval(() => this.tryRecover(), this.probeMs);
    this.probe.unref();
    return this.local;
  }

  private tryRecover(): void {
    if (this.recovering) return;
    this.recovering = true;
    this.recover()
      .catch((error: unknown) => this.log?.('debug', 'budgets: Redis is still out of reach', { error: String(error) }))
      .finally(() => {
        this.recovering = false;
      });
  }

  /**
   * Replays kept settles while traffic is still served locally, until few are left; then sends the rest together
   * with the open local grants and goes back to Redis in the same step. Waiting for nothing to be left would never
   * end under load: local traffic keeps adding grants and settles during every round trip.
   */
  private async recover(): Promise<void> {
    await this.redis.ping();
    while (this.pending.length > RECOVERY_BATCH) {
      const entries = this.pending.slice(0, RECOVERY_BATCH);
      const failure = this.applied([], entries, await this.redis.replay([], entries, this.now()));
      if (failure !== undefined) throw failure;
    }
    const grants = [...this.grants.values()];
    const entries = this.pending.splice(0);
    // Written to the connection before anything sent after the switch below, which Redis therefore executes after.
    const replay = this.redis.replay(grants.map((grant) => grant.shared), entries, this.now());
    this.local = undefined;
    this.grants.clear();
    this.close();
    this.log?.('info', 'budgets: Redis is back, replaying local spend', { settles: entries.length, reservations: grants.length });
    this.onDegraded?.(false);
    let failure: Error | undefined;
    try {
      failure = this.applied(grants, entries, await replay);
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      for (const entry of entries) this.keep(entry);
      for (const grant of grants) this.handBack(grant);
    }
    if (failure !== undefined) this.degrade(failure);
  }

  /**
   * Takes what Redis confirmed off the books; keeps the rest for the next replay. Returns the first error.
   * Grants that were not held stay to be handed over; settles Redis refused were not applied and are numbered
   * again, after everything sent so far.
   */
  private applied(grants: readonly Grant[], entries: readonly SpendEntry[], replayed: Replayed): Error | undefined {
    let failure: Error | undefined;
    replayed.held.forEach((error, i) => {
      const grant = grants[i] as Grant;
      if (error === undefined) return;
      failure ??= error;
      this.handBack(grant);
    });
    replayed.recorded.forEach((outcome, i) => {
      const entry = entries[i] as SpendEntry;
      const at = this.pending.indexOf(entry);
      if (!(outcome instanceof Error)) {
        this.report(outcome);
        if (at >= 0) this.pending.splice(at, 1);
        return;
      }
      failure ??= outcome;
      if (refusedByRedis(outcome)) {
        if (at >= 0) this.pending.splice(at, 1);
        this.keep(this.redis.spendEntry(entry.reservation, usdOf(entry.actualMicros)));
      } else if (at < 0) {
        this.keep(entry);
      }
    });
    return failure;
  }

  /** A grant Redis may not hold, to hand over at the next return; unless it was settled meanwhile. */
  private handBack(grant: Grant): void {
    if (!this.settled.has(grant.shared)) this.grants.set(grant.shared.id, grant);
  }

  private keep(entry: SpendEntry): void {
    let at = this.pending.length;
    while (at > 0 && (this.pending[at - 1] as SpendEntry).seq > entry.seq) at--;
    this.pending.splice(at, 0, entry);
  }

  private settleLocally(local: LocalShare, reservation: Reservation, grant: Grant | undefined, actualUSD: number): void {
    // A reservation granted by Redis is settled in the local view against the share too, so the share counts it.
    local.ledger.settleNow(grant?.local ?? { ...reservation, windows: reservation.windows.map((spec) => shareOf(spec, local.replicas)) }, actualUSD);
  }

  /** While degraded: the spend last seen in Redis plus the settles not yet replayed; reserved in the local share. */
  private estimateSpent(scope: BudgetScope, now: number): Spent {
    const known = this.redis.lastKnownSpent();
    const [daily = 0, monthly = 0] = windowSpecs([scope], now).map((spec) => {
      const seen = known.find((k) => k.scope === spec.scope && k.period === spec.period)?.spentUSD ?? 0;
      const kept = this.pending
        .filter((entry) => entry.reservation.windows.some((w) => w.scope === spec.scope && w.period === spec.period))
        .reduce((sum, entry) => sum + entry.actualMicros, 0);
      return microsDown(seen) + kept;
    });
    const reservedUSD = this.local?.ledger.spentNow({ id: scope.id, budget: localShare(scope.budget, this.local.replicas) }, now).reservedUSD ?? 0;
    return { dailyUSD: usdOf(daily), monthlyUSD: usdOf(monthly), reservedUSD };
  }

  /** Passes on each fraction once per window period, whether the local share or Redis saw it cross first. */
  private report(crossings: readonly ThresholdCrossing[]): void {
    for (const crossing of crossings) {
      const window = `${crossing.scope}|${crossing.window}|`;
      const key = `${window}${crossing.period}`;
      let fractions = this.reported.get(key);
      if (fractions === undefined) {
        // Periods of this window that ended are done with; period ids sort by time.
        for (const other of this.reported.keys()) if (other.startsWith(window) && other < key) this.reported.delete(other);
        fractions = new Set();
        this.reported.set(key, fractions);
      }
      if (fractions.has(crossing.fraction)) continue;
      fractions.add(crossing.fraction);
      this.onThreshold?.(crossing);
    }
  }
}
