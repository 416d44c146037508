/**
 * The budget gauges' collection in GatewayMetrics, with a scripted ledger read: one read per scrape for the three
 * gauges, the last values kept when the ledger fails or is slow, series of removed budgets dropped.
 * (test/gateway/e2e/budget-gauges.test.ts reads real ledgers through real gateways.)
 */
import { describe, expect, it } from '@jest/globals';
import type { GatewayConfig } from '../../src/api/gateway-config.js';
import type { BudgetScope } from '../../src/gateway/budget/ledger.js';
import { GatewayMetrics, readBudgets, type BudgetReading } from '../../src/gateway/metrics.js';
import { metricValue } from '../support/gateway.js';

const reading = (scope: BudgetReading['scope'], window: BudgetReading['window'], spentUSD: number, reservedUSD: number, limitUSD?: number): BudgetReading => ({ scope, window, spentUSD, reservedUSD, limitUSD });

function metricsReading(next: () => Promise<BudgetReading[]>): { metrics: GatewayMetrics; reads: () => number; errors: unknown[] } {
  const metrics = new GatewayMetrics({ route: 'r', environment: 'e' });
  let reads = 0;
  const errors: unknown[] = [];
  metrics.watchBudgets(
    () => {
      reads++;
      return next();
    },
    (error) => errors.push(error),
  );
  return { metrics, reads: () => reads, errors };
}

describe('readBudgets', () => {
  it('reads every window of the environment budget and of each client with one, the month showing the day\'s reservations', async () => {
    const config = { budget: { daily: 10, alertAt: [], onExhausted: 'reject' }, clients: [{ name: 'web', budget: { monthly: 50, alertAt: [], onExhausted: 'reject' } }, { name: 'batch' }] } as unknown as GatewayConfig;
    const asked: string[] = [];
    const read = async (scope: BudgetScope, now: number) => {
      asked.push(`${scope.id}@${now}`);
      return scope.id === 'environment' ? { dailyUSD: 1, monthlyUSD: 4, reservedUSD: 0.5 } : { dailyUSD: 2, monthlyUSD: 3, reservedUSD: 0.25 };
    };
    expect(await readBudgets(config, read, 1234)).toEqual([
      reading('environment', 'daily', 1, 0.5, 10),
      reading('environment', 'monthly', 4, 0.5, undefined),
      reading('client:web', 'daily', 2, 0.25, undefined),
      reading('client:web', 'monthly', 3, 0.25, 50),
    ]);
    expect(asked).toEqual(['environment@1234', 'client:web@1234']);
  });
});

describe('the budget gauges', () => {
  it('are set from one read per scrape: spent, reserved, and for windows with a limit what is left (not below 0)', async () => {
    const { metrics, reads } = metricsReading(async () => [reading('environment', 'daily', 7, 1, 10), reading('environment', 'monthly', 7, 1, undefined), reading('client:web', 'daily', 3, 0, 2)]);
    const text = await metrics.registry.metrics();
    expect(reads()).toBe(1);
    expect(metricValue(text, 'llmroute_budget_spent_usd', { scope: 'environment', window: 'daily' })).toBe(7);
    expect(metricValue(text, 'llmroute_budget_reserved_usd', { scope: 'environment', window: 'monthly' })).toBe(1);
    expect(metricValue(text, 'llmroute_budget_remaining_usd', { scope: 'environment', window: 'daily' })).toBe(2);
    expect(metricValue(text, 'llmroute_budget_remaining_usd', { scope: 'client:web', window: 'daily' })).toBe(0);
    expect(text).toContain('llmroute_budget_remaining_usd{scope="client:web",window="daily",route="r",environment="e"} 0');
    expect(text).not.toMatch(/llmroute_budget_remaining_usd\{scope="environment",window="monthly"/);
  });

  it('keep their last values when the ledger fails or does not answer within 1.5 s, and drop budgets that are gone', async () => {
    const script: (() => Promise<BudgetReading[]>)[] = [
      async () => [reading('environment', 'daily', 1, 0, 10), reading('client:web', 'daily', 1, 0, 5)],
      async () => {
        throw new Error('Connection is closed.');
      },
      () => new Promise(() => undefined),
      async () => [reading('environment', 'daily', 2, 0, 10)],
    ];
    const { metrics, errors } = metricsReading(() => (script.shift() as () => Promise<BudgetReading[]>)());
    const spent = async () => {
      const text = await metrics.registry.metrics();
      return [metricValue(text, 'llmroute_budget_spent_usd', { scope: 'environment' }), text.includes('client:web')];
    };
    expect(await spent()).toEqual([1, true]);
    expect(await spent()).toEqual([1, true]);
    const started = Date.now();
    expect(await spent()).toEqual([1, true]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(errors.map(String)).toEqual(['Error: Connection is closed.', 'Error: no answer within 1500 ms']);
    expect(await spent()).toEqual([2, false]);
  });

  it('are absent while nothing is watched (no budget ledger)', async () => {
    const text = await new GatewayMetrics({ route: 'r', environment: 'e' }).registry.metrics();
    expect(text).toContain('# TYPE llmroute_budget_spent_usd gauge');
    expect(text).not.toMatch(/^llmroute_budget_(spent|reserved|remaining)_usd/m);
  });
});
