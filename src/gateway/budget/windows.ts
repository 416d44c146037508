/**
 * Budget windows: the UTC day and the UTC calendar month. A window is named by its period id (`2026-11-22`,
 * `2026-11`), which is also what spend is keyed by, so a day and a month can never share a counter. UTC, not the
 * cluster's or the caller's time zone: every replica must agree on when a window resets without configuration.
 */
export const WINDOWS = ['daily', 'monthly'] as const;
export type BudgetWindow = (typeof WINDOWS)[number];

export interface Period {
  window: BudgetWindow;
  /** `YYYY-MM-DD` for a day, `YYYY-MM` for a month. */
  id: string;
  /** Epoch milliseconds of the period's first instant. */
  startsAt: number;
  /** Epoch milliseconds at which the next period starts: when the budget resets. */
  resetsAt: number;
}

const pad = (value: number, width: number) => String(value).padStart(width, '0');

/** The period of `window` that contains `now` (epoch milliseconds). */
export function periodOf(window: BudgetWindow, now: number): Period {
  const date = new Date(now);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  if (window === 'monthly') {
    // Date.UTC rolls month 12 over into January of the next year.
    return { window, id: `${pad(year, 4)}-${pad(month + 1, 2)}`, startsAt: Date.UTC(year, month, 1), resetsAt: Date.UTC(year, month + 1, 1) };
  }
  const day = date.getUTCDate();
  return {
    window,
    id: `${pad(year, 4)}-${pad(month + 1, 2)}-${pad(day, 2)}`,
    startsAt: Date.UTC(year, month, day),
    // Day 29 of a 28-day February rolls over into March 1st; leap years need no special case.
    resetsAt: Date.UTC(year, month, day + 1),
  };
}
