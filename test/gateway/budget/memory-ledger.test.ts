import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Budget } from '../../../src/api/schema.js';
import type { BudgetScope, ThresholdCrossing } from '../../../src/gateway/budget/ledger.js';
import { MemoryLedger } from '../../../src/gateway/budget/memory-ledger.js';

const budget = (fields: Partial<Budget>): Budget => ({ alertAt: [0.8], onExhausted: 'reject', ...fields });
const environment = (fields: Partial<Budget>): BudgetScope => ({ id: 'environment', budget: budget(fields) });
const client = (name: string, fields: Partial<Budget>): BudgetScope => ({ id: `client:${name}`, budget: budget(fields) });
const now = Date.parse('2026-11-22T10:00:00Z');
const DAY = 86_400_000;

describe('MemoryLedger', () => {
  it('holds a small budget under 200 concurrent requests', async () => {
    const ledger = new MemoryLedger();
    const scopes = [environment({ daily: 1 })];
    const worstMicros = 20_000;
    let settledMicros = 0;
    let outstandingMicros = 0;
    let admitted = 0;
    let refused = 0;
    let peakMicros = 0;
    await Promise.all(
      Array.from({ length: 200 }, async () => {
        // Arrivals spread over 40 ms, each request in flight for up to 5: admissions and settles interleave.
        await sleep(Math.random() * 40);
        const result = await ledger.reserve(scopes, worstMicros / 1e6, now);
        if (!result.ok) {
          refused++;
          return;
        }
        admitted++;
        outstandingMicros += worstMicros;
        // What is spent and what may still be spent never exceeds the budget, at any moment.
        peakMicros = Math.max(peakMicros, settledMicros + outstandingMicros);
        await sleep(Math.random() * 5);
        const actualMicros = 5000 + Math.floor(Math.random() * 15_001);
        await ledger.settle(result.reservation, actualMicros / 1e6, now);
        outstandingMicros -= worstMicros;
        settledMicros += actualMicros;
      }),
    );
    expect(peakMicros).toBeLessThanOrEqual(1_000_000);
    expect(settledMicros).toBeLessThanOrEqual(1_000_000);
    // Settling below the worst case gives budget back: more than limit / worst case get through.
    expect(admitted).toBeGreaterThanOrEqual(50);
    expect(refused).toBeGreaterThan(0);
    expect(await ledger.spent(scopes[0]!, now)).toEqual({ dailyUSD: settledMicros / 1e6, monthlyUSD: settledMicros / 1e6, reservedUSD: 0 });
  });

  it('releases the reservation on settle and keeps only the actual cost', async () => {
    const ledger = new MemoryLedger();
    const scopes = [environment({ daily: 1 })];
    const first = await ledger.reserve(scopes, 0.6, now);
    if (!first.ok) throw new Error('refused');
    expect(await ledger.spent(scopes[0]!, now)).toEqual({ dailyUSD: 0, monthlyUSD: 0, reservedUSD: 0.6 });
    expect((await ledger.reserve(scopes, 0.6, now)).ok).toBe(false);
    await ledger.settle(first.reservation, 0.1, now);
    expect(await ledger.spent(scopes[0]!, now)).toEqual({ dailyUSD: 0.1, monthlyUSD: 0.1, reservedUSD: 0 });
    expect((await ledger.reserve(scopes, 0.6, now)).ok).toBe(true);
    await expect(ledger.settle(first.reservation, 0.1, now)).rejects.toThrow('settled twice');
  });

  it('reports each alertAt fraction once per window period', async () => {
    const crossings: ThresholdCrossing[] = [];
    const ledger = new MemoryLedger({ onThreshold: (crossing) => crossings.push(crossing) });
    const scopes = [environment({ daily: 1, monthly: 100, alertAt: [0.5, 0.8] })];
    const spend = async (usd: number, at = now) => {
      const result = await ledger.reserve(scopes, usd, at);
      if (!result.ok) throw new Error('refused');
      await ledger.settle(result.reservation, usd, at);
    };
    for (const usd of [0.3, 0.3, 0.3, 0.05]) await spend(usd);
    expect(crossings).toEqual([
      { scope: 'environment', window: 'daily', period: '2026-11-22', fraction: 0.5, spentUSD: 0.6, limitUSD: 1 },
      { scope: 'environment', window: 'daily', period: '2026-11-22', fraction: 0.8, spentUSD: 0.9, limitUSD: 1 },
    ]);
    crossings.length = 0;
    await spend(0.6, now + DAY);
    expect(crossings).toEqual([{ scope: 'environment', window: 'daily', period: '2026-11-23', fraction: 0.5, spentUSD: 0.6, limitUSD: 1 }]);
  });

  it('says which budget is exhausted, what happens now, and when it resets', async () => {
    const ledger = new MemoryLedger();
    const scopes = [environment({ monthly: 10 }), client('alice', { daily: 1, onExhausted: 'degrade', degradeTo: 'cheap' })];
    const first = await ledger.reserve(scopes, 0.7, now);
    if (!first.ok) throw new Error('refused');
    await ledger.settle(first.reservation, 0.7, now);
    expect(await ledger.reserve(scopes, 0.5, now)).toEqual({
      ok: false,
      exceeded: {
        scope: 'client:alice',
        window: 'daily',
        limitUSD: 1,
        spentUSD: 0.7,
        reservedUSD: 0,
        resetsAt: Date.parse('2026-11-23T00:00:00Z'),
        onExhausted: 'degrade',
        degradeTo: 'cheap',
      },
    });
    // The next day, alice's daily budget is back.
    expect((await ledger.reserve(scopes, 0.5, now + DAY)).ok).toBe(true);
  });

  it("checks a client's budget and the environment's together, all or nothing", async () => {
    const ledger = new MemoryLedger();
    const env = environment({ daily: 1 });
    const alice = [env, client('alice', { daily: 0.7 })];
    const bob = [env, client('bob', { daily: 0.7 })];
    const spend = await ledger.reserve(alice, 0.6, now);
    if (!spend.ok) throw new Error('refused');
    await ledger.settle(spend.reservation, 0.6, now);
    // Bob has room in his own budget, but not in the environment's.
    const refused = await ledger.reserve(bob, 0.5, now);
    expect(refused.ok === false && refused.exceeded).toMatchObject({ scope: 'environment', window: 'daily', spentUSD: 0.6 });
    // Nothing of the refused reservation was held in Bob's budget.
    expect(await ledger.spent(bob[1]!, now)).toEqual({ dailyUSD: 0, monthlyUSD: 0, reservedUSD: 0 });
    expect((await ledger.reserve(bob, 0.4, now)).ok).toBe(true);
  });

  it('stops holding budget for a reservation that is never settled once it expires', async () => {
    const ledger = new MemoryLedger();
    const scopes = [environment({ daily: 1 })];
    expect((await ledger.reserve(scopes, 1, now, 10_000)).ok).toBe(true);
    expect((await ledger.reserve(scopes, 1, now + 5000)).ok).toBe(false);
    expect((await ledger.reserve(scopes, 1, now + 10_001)).ok).toBe(true);
  });

  it('records spend in the windows the reservation was made in', async () => {
    const ledger = new MemoryLedger();
    const scope = environment({ daily: 1 });
    const lateAtNight = Date.parse('2026-11-30T23:59:00Z');
    const result = await ledger.reserve([scope], 0.5, lateAtNight);
    if (!result.ok) throw new Error('refused');
    const nextMonth = lateAtNight + 120_000;
    await ledger.settle(result.reservation, 0.5, nextMonth);
    expect(await ledger.spent(scope, lateAtNight)).toMatchObject({ dailyUSD: 0.5, monthlyUSD: 0.5 });
    expect(await ledger.spent(scope, nextMonth)).toMatchObject({ dailyUSD: 0, monthlyUSD: 0 });
  });
});
