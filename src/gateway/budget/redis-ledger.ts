/**
 * The ledger shared by every replica of a route environment, in Redis: one Lua script checks every window of every
 * scope and reserves, another settles (see redis-scripts.ts). Replicas also register a heartbeat, so each knows how
 * many are live: the resilient ledger divides budgets by that number when Redis is out of reach.
 *
 * Keys are `llmroute:{<namespace>/<route>/<environment>}:...`. The braces are a Redis Cluster hash tag: all keys of
 * one route environment hash to one slot, which multi-key scripts require, while different routes spread over the
 * cluster. Nothing here retries: a failed command rejects, and the resilient ledger decides what that means.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../log.js';
import { crossedFractions, exceededOf, microsUp, usdOf, windowSpecs, type WindowState } from './decide.js';
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
import type { SeededSpend } from './memory-ledger.js';
import { HEARTBEAT, RECORD, RESERVE, SPENT } from './redis-scripts.js';

export interface RouteRef {
  name: string;
  namespace?: string | undefined;
  environment: string;
}

export function keyPrefix(route: RouteRef): string {
  return `llmroute:{${route.namespace ? `${route.namespace}/` : ''}${route.name}/${route.environment}}:`;
}

/** A settled spend on its way to Redis, numbered so that sending it again can never count it twice. */
export interface SpendEntry {
  readonly seq: number;
  readonly reservation: Reservation;
  readonly actualMicros: number;
}

export interface Replayed {
  held: (Error | undefined)[];
  recorded: (ThresholdCrossing[] | Error)[];
}

export interface RedisLedgerOptions {
  /** A client that fails fast rather than queueing (see redis-client.ts). */
  redis: Redis;
  route: RouteRef;
  onThreshold?: OnThreshold;
  maxHoldMs?: number;
  /** Unique per process: spend sequence numbers start again with every process. */
  replicaId?: string;
  heartbeatMs?: number;
  log?: Logger;
}

/** Counters, records and sequence marks outlive their period or last use by a week: late settles and replays land. */
const RETENTION_MS = 7 * 24 * 3600_000;
/** A replica that missed this many heartbeats in a row is no longer counted. */
const MISSED_HEARTBEATS = 3;

interface Script {
  lua: string;
  keys: string[];
  args: (string | number)[];
}

function integers(reply: unknown): number[] {
  if (!Array.isArray(reply)) throw new TypeError(`unexpected reply from a budget script: ${JSON.stringify(reply)}`);
  return reply.map(Number);
}

export class RedisLedger implements Ledger {
  readonly replicaId: string;
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly onThreshold: OnThreshold | undefined;
  private readonly maxHoldMs: number;
  private readonly heartbeatMs: number;
  private readonly log: Logger | undefined;
  private readonly settled = new WeakSet<Reservation>();
  /** The latest spend seen per scope and window, whichever script reported it. */
  private readonly known = new Map<string, SeededSpend>();
  private seq = 0;
  private live = 0;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: RedisLedgerOptions) {
    this.redis = options.redis;
    this.prefix = keyPrefix(options.route);
    this.onThreshold = options.onThreshold;
    this.maxHoldMs = options.maxHoldMs ?? DEFAULT_MAX_HOLD_MS;
    this.replicaId = options.replicaId ?? randomUUID();
    this.heartbeatMs = options.heartbeatMs ?? 5000;
    this.log = options.log;
  }

  /** `id`: the resilient ledger's, so that a local reservation made after a lost reply takes this one over. */
  async reserve(scopes: readonly BudgetScope[], amountUSD: number, now: number, holdMs = this.maxHoldMs, id: string = randomUUID()): Promise<ReserveResult> {
    const specs = windowSpecs(scopes, now);
    const reservation: Reservation = { id, amountMicros: microsUp(amountUSD), expiresAt: now + Math.min(holdMs, this.maxHoldMs), windows: specs };
    const [ok, ...flat] = integers(await this.run(this.reserveScript(reservation, now, false)));
    const states: WindowState[] = specs.map((spec, i) => ({ spentMicros: flat[2 * i] ?? 0, reservedMicros: flat[2 * i + 1] ?? 0 }));
    specs.forEach((spec, i) => this.observe(spec, states[i]?.spentMicros ?? 0));
    if (ok === 1) return { ok: true, reservation };
    const exceeded = exceededOf(specs, states, reservation.amountMicros);
    if (exceeded === undefined) throw new Error('the budget script refused a reservation that fits every window');
    return { ok: false, exceeded };
  }

  async settle(reservation: Reservation, actualUSD: number, now: number): Promise<void> {
    if (this.settled.has(reservation)) throw new Error(`budget reservation ${reservation.id} settled twice`);
    this.settled.add(reservation);
    for (const crossing of await this.record(this.spendEntry(reservation, actualUSD), now)) this.onThreshold?.(crossing);
  }

  /** Numbers a spend. Numbers must reach Redis in the order they were given (see RECORD). */
  spendEntry(reservation: Reservation, actualUSD: number): SpendEntry {
    return { seq: ++this.seq, reservation, actualMicros: microsUp(actualUSD) };
  }

  /** Applies a spend, once however often it is sent; returns the thresholds it crossed (none when already applied). */
  async record(entry: SpendEntry, now: number): Promise<ThresholdCrossing[]> {
    return this.recorded(entry, await this.run(this.recordScript(entry, now)));
  }

  /**
   * What the resilient ledger sends when Redis is back, as one pipeline: first `holds`, reservations it granted from
   * its local share, held without a limit check (the money is committed) so they count against the budget until
   * they settle, idempotently; then `entries`, spends in sequence order. The pipeline is written to the connection
   * before this returns, so anything sent afterwards executes after it. Per item: undefined or the thresholds
   * crossed, or the error. Replies come in order: an error other than Redis refusing a script (a lost connection)
   * is followed only by errors.
   */
  async replay(holds: readonly Reservation[], entries: readonly SpendEntry[], now: number): Promise<Replayed> {
    const live = holds.filter((reservation) => reservation.expiresAt > now);
    const replies = await this.runMany([...live.map((reservation) => this.reserveScript(reservation, now, true)), ...entries.map((entry) => this.recordScript(entry, now))]);
    return {
      held: holds.map((reservation) => {
        const reply = replies[live.indexOf(reservation)];
        return reply instanceof Error ? reply : undefined;
      }),
      recorded: entries.map((entry, i) => {
        const reply = replies[live.length + i];
        return reply instanceof Error ? reply : this.recorded(entry, reply);
      }),
    };
  }

  async spent(scope: BudgetScope, now: number): Promise<Spent> {
    const [daily, monthly] = windowSpecs([scope], now) as [WindowSpec, WindowSpec];
    const keys = [this.key('reservations'), this.key('reservation-records'), this.spentKey(daily), this.spentKey(monthly), this.reservedKey(daily)];
    const [dailyMicros = 0, monthlyMicros = 0, reservedMicros = 0] = integers(await this.run({ lua: SPENT, keys, args: [now] }));
    this.observe(daily, dailyMicros);
    this.observe(monthly, monthlyMicros);
    return { dailyUSD: usdOf(dailyMicros), monthlyUSD: usdOf(monthlyMicros), reservedUSD: usdOf(reservedMicros) };
  }

  /** Registers this replica as live for a few heartbeat periods; returns the number of live replicas. */
  async heartbeat(now: number): Promise<number> {
    const count = Number(await this.run({ lua: HEARTBEAT, keys: [this.key('replicas')], args: [now, this.replicaId, now + MISSED_HEARTBEATS * this.heartbeatMs] }));
    this.live = count;
    return count;
  }

  /** Live replicas at the last successful heartbeat; 0 before the first. */
  liveReplicas(): number {
    return this.live;
  }

  /** The latest spend seen in Redis, per scope and window: what a replica carries into an outage. */
  lastKnownSpent(): SeededSpend[] {
    return [...this.known.values()];
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /** Heartbeats now and every `heartbeatMs`, until `close`. */
  start(): void {
    const beat = () => {
      this.heartbeat(Date.now()).catch((error: unknown) => this.log?.('debug', 'budget heartbeat failed', { error: String(error) }));
    };
    beat();
    this.timer = setInterval(beat, this.heartbeatMs);
    this.timer.unref();
  }

  /** Stops heartbeating and deregisters, so the other replicas' shares grow at once rather than after expiry. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.zrem(this.key('replicas'), this.replicaId).catch(() => undefined);
  }

  // EVAL, not EVALSHA: falling back from NOSCRIPT would resend a command out of order, and RECORD relies on order.
  // Redis caches the compiled script all the same.
  private run({ lua, keys, args }: Script): Promise<unknown> {
    return this.redis.eval(lua, keys.length, ...keys, ...args);
  }

  /**
   * One round trip; per script its reply or its error. The pipeline is written before the first await (a
   * standalone connection writes it synchronously), which `replay` promises its caller.
   */
  private async runMany(scripts: readonly Script[]): Promise<unknown[]> {
    const pipeline = this.redis.pipeline();
    for (const { lua, keys, args } of scripts) pipeline.eval(lua, keys.length, ...keys, ...args);
    const replies = await pipeline.exec();
    if (replies === null) throw new Error('the budget pipeline was discarded');
    return replies.map(([error, reply]) => error ?? reply);
  }

  /** The thresholds an applied spend crossed, from the counters' new totals; none when it had been applied before. */
  private recorded({ reservation, actualMicros }: SpendEntry, reply: unknown): ThresholdCrossing[] {
    const [applied, ...totals] = integers(reply);
    if (applied !== 1) return [];
    return reservation.windows.flatMap((spec, i) => {
      const after = totals[i] ?? 0;
      this.observe(spec, after);
      return crossedFractions(spec.budget.alertAt, spec.limitMicros, after - actualMicros, after).map((fraction) => ({
        scope: spec.scope,
        window: spec.window,
        period: spec.period,
        fraction,
        spentUSD: usdOf(after),
        limitUSD: usdOf(spec.limitMicros ?? 0),
      }));
    });
  }

  private recordScript({ reservation, actualMicros, seq }: SpendEntry, now: number): Script {
    return {
      lua: RECORD,
      keys: [this.key('reservations'), this.key('reservation-records'), this.key(`applied:${this.replicaId}`), ...reservation.windows.map((spec) => this.spentKey(spec))],
      args: [reservation.id, actualMicros, seq, now + RETENTION_MS, ...reservation.windows.map((spec) => spec.resetsAt + RETENTION_MS)],
    };
  }

  private reserveScript(reservation: Reservation, now: number, force: boolean): Script {
    const { windows } = reservation;
    const keys = [this.key('reservations'), this.key('reservation-records'), ...windows.flatMap((spec) => [this.spentKey(spec), this.reservedKey(spec)])];
    const args = [
      now,
      reservation.id,
      reservation.amountMicros,
      reservation.expiresAt,
      force ? '1' : '0',
      reservation.expiresAt + RETENTION_MS,
      ...windows.flatMap((spec) => [spec.limitMicros ?? '', spec.resetsAt + RETENTION_MS]),
    ];
    return { lua: RESERVE, keys, args };
  }

  private observe(spec: WindowSpec, spentMicros: number): void {
    // A late settle of yesterday's reservation must not replace what is known of today. Period ids sort by time.
    const current = this.known.get(`${spec.scope}|${spec.window}`);
    if (current !== undefined && current.period > spec.period) return;
    this.known.set(`${spec.scope}|${spec.window}`, { scope: spec.scope, period: spec.period, spentUSD: usdOf(spentMicros) });
  }

  private key(suffix: string): string {
    return `${this.prefix}${suffix}`;
  }

  private spentKey(spec: WindowSpec): string {
    return this.key(`spent:${spec.scope}:${spec.period}`);
  }

  private reservedKey(spec: WindowSpec): string {
    return this.key(`reserved:${spec.scope}:${spec.period}`);
  }
}
