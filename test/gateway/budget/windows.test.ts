import { describe, expect, it } from '@jest/globals';
import { periodOf } from '../../../src/gateway/budget/windows.js';

const at = (iso: string) => Date.parse(iso);

describe('budget windows', () => {
  it('names the UTC day and month and says when each resets', () => {
    const now = at('2026-11-22T13:45:00.000Z');
    expect(periodOf('daily', now)).toEqual({ window: 'daily', id: '2026-11-22', startsAt: at('2026-11-22T00:00:00Z'), resetsAt: at('2026-11-23T00:00:00Z') });
    expect(periodOf('monthly', now)).toEqual({ window: 'monthly', id: '2026-11', startsAt: at('2026-11-01T00:00:00Z'), resetsAt: at('2026-12-01T00:00:00Z') });
  });

  it('changes period at midnight UTC, to the millisecond', () => {
    expect(periodOf('daily', at('2026-11-22T23:59:59.999Z')).id).toBe('2026-11-22');
    expect(periodOf('daily', at('2026-11-23T00:00:00.000Z')).id).toBe('2026-11-23');
    expect(periodOf('monthly', at('2026-11-30T23:59:59.999Z')).id).toBe('2026-11');
    expect(periodOf('monthly', at('2026-12-01T00:00:00.000Z')).id).toBe('2026-12');
  });

  it('rolls months of 30 and 31 days and the year over', () => {
    expect(periodOf('daily', at('2026-01-31T12:00:00Z')).resetsAt).toBe(at('2026-02-01T00:00:00Z'));
    expect(periodOf('daily', at('2026-04-30T12:00:00Z')).resetsAt).toBe(at('2026-05-01T00:00:00Z'));
    expect(periodOf('daily', at('2026-12-31T23:00:00Z'))).toMatchObject({ id: '2026-12-31', resetsAt: at('2027-01-01T00:00:00Z') });
    expect(periodOf('monthly', at('2026-12-31T23:00:00Z'))).toMatchObject({ id: '2026-12', resetsAt: at('2027-01-01T00:00:00Z') });
  });

  it('knows leap years: 2024 and 2000 have a February 29th, 2023 and 2100 do not', () => {
    expect(periodOf('daily', at('2024-02-28T12:00:00Z')).resetsAt).toBe(at('2024-02-29T00:00:00Z'));
    expect(periodOf('daily', at('2024-02-29T12:00:00Z'))).toMatchObject({ id: '2024-02-29', resetsAt: at('2024-03-01T00:00:00Z') });
    expect(periodOf('daily', at('2000-02-29T00:00:00Z')).id).toBe('2000-02-29');
    expect(periodOf('daily', at('2023-02-28T12:00:00Z')).resetsAt).toBe(at('2023-03-01T00:00:00Z'));
    expect(periodOf('daily', at('2100-02-28T12:00:00Z')).resetsAt).toBe(at('2100-03-01T00:00:00Z'));
    const february = (year: number) => {
      const { startsAt, resetsAt } = periodOf('monthly', Date.UTC(year, 1, 10));
      return (resetsAt - startsAt) / 86_400_000;
    };
    expect([2024, 2000, 2023, 2100].map(february)).toEqual([29, 29, 28, 28]);
  });

  it('pads years before 1000 so period ids sort as text', () => {
    expect(periodOf('monthly', Date.UTC(999, 0, 5)).id).toBe('0999-01');
  });
});
