import { describe, expect, it } from '@jest/globals';
import type { Budget } from '../../../src/api/schema.js';
import { crossedFractions, exceededOf, localShare, microsDown, microsUp, windowSpecs } from '../../../src/gateway/budget/decide.js';

const budget = (fields: Partial<Budget>): Budget => ({ alertAt: [0.8], onExhausted: 'reject', ...fields });
const now = Date.parse('2026-11-22T10:00:00Z');

describe('budget decisions', () => {
  it('rounds spend up and limits down to whole micro-dollars, without float noise', () => {
    expect(microsUp(0.1)).toBe(100_000);
    expect(microsDown(0.1)).toBe(100_000);
    expect(microsUp(0.3)).toBe(300_000);
    expect(microsUp(1e-7)).toBe(1);
    expect(microsDown(1.0000009)).toBe(1_000_000);
    expect(microsUp(0)).toBe(0);
  });

  it('tracks both windows of every scope, with a limit only where the budget sets one', () => {
    const specs = windowSpecs([{ id: 'environment', budget: budget({ monthly: 100 }) }], now);
    expect(specs.map(({ window, period, limitMicros }) => ({ window, period, limitMicros }))).toEqual([
      { window: 'daily', period: '2026-11-22', limitMicros: undefined },
      { window: 'monthly', period: '2026-11', limitMicros: 100_000_000 },
    ]);
  });

  it('refuses when spent + reserved + amount exceeds a limit, and reports the window that resets last', () => {
    const specs = windowSpecs(
      [
        { id: 'client:alice', budget: budget({ daily: 1, onExhausted: 'degrade', degradeTo: 'cheap' }) },
        { id: 'environment', budget: budget({ monthly: 10 }) },
      ],
      now,
    );
    const state = (spentMicros: number, reservedMicros = 0) => ({ spentMicros, reservedMicros });
    // Exactly at the limit fits.
    expect(exceededOf(specs, [state(600_000, 300_000), state(0), state(0), state(0)], 100_000)).toBeUndefined();
    expect(exceededOf(specs, [state(600_000, 300_000), state(0), state(0), state(0)], 100_001)).toMatchObject({
      scope: 'client:alice',
      window: 'daily',
      limitUSD: 1,
      spentUSD: 0.6,
      reservedUSD: 0.3,
      resetsAt: Date.parse('2026-11-23T00:00:00Z'),
      onExhausted: 'degrade',
      degradeTo: 'cheap',
    });
    // The day and the month both full: the month is what blocks.
    expect(exceededOf(specs, [state(1_000_000), state(0), state(0), state(10_000_000)], 1)).toMatchObject({ scope: 'environment', window: 'monthly', resetsAt: Date.parse('2026-12-01T00:00:00Z') });
  });

  it('reports each alertAt fraction by the increment that crosses it', () => {
    expect(crossedFractions([0.5, 0.8], 1000, 400, 500)).toEqual([0.5]);
    expect(crossedFractions([0.5, 0.8], 1000, 500, 790)).toEqual([]);
    expect(crossedFractions([0.5, 0.8], 1000, 499, 900)).toEqual([0.5, 0.8]);
    expect(crossedFractions([0.5], undefined, 0, 1e9)).toEqual([]);
  });

  it('divides each limit by the replica count, at least one', () => {
    expect(localShare(budget({ daily: 10, monthly: 90 }), 3)).toMatchObject({ daily: 10 / 3, monthly: 30 });
    expect(localShare(budget({ monthly: 90 }), 0)).toEqual(budget({ monthly: 90 }));
  });
});
