import { describe, expect, it } from '@jest/globals';
import { RetryBudget, SlidingWindow } from '../../src/gateway/retry-budget.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, set: (ms: number) => (now = start + ms) };
}

/** How many retries the budget grants in a row before it refuses one. */
function drain(budget: RetryBudget): number {
  let granted = 0;
  while (budget.tryAcquireRetry()) granted++;
  return granted;
}

function requests(budget: RetryBudget, n: number): void {
  for (let i = 0; i < n; i++) budget.recordRequest();
}

describe('RetryBudget', () => {
  it('allows budgetPercent of the requests in the window as retries', () => {
    const clock = manualClock();
    const budget = new RetryBudget({ budgetPercent: 20, now: clock.now });
    requests(budget, 100);
    expect(drain(budget)).toBe(20);
  });

  it('counts exactly, without floating-point loss: 10% of 30 requests is 3 retries', () => {
    const budget = new RetryBudget({ budgetPercent: 10, minRetries: 0, now: manualClock().now });
    requests(budget, 30);
    expect(drain(budget)).toBe(3);
  });

  it('grants more retries as more requests arrive, never more than the share', () => {
    const budget = new RetryBudget({ budgetPercent: 20, minRetries: 0, now: manualClock().now });
    requests(budget, 10);
    expect(drain(budget)).toBe(2);
    requests(budget, 4); // 14 requests: 2.8 retries, still 2
    expect(drain(budget)).toBe(0);
    budget.recordRequest(); // 15 requests: 3
    expect(drain(budget)).toBe(1);
  });

  it('lets a quiet gateway retry a few times per window however few requests it had', () => {
    const budget = new RetryBudget({ budgetPercent: 20, now: manualClock().now });
    expect(drain(budget)).toBe(3);
    const none = new RetryBudget({ budgetPercent: 20, minRetries: 0, now: manualClock().now });
    expect(drain(none)).toBe(0);
  });

  it('forgets requests and retries once they leave the window', () => {
    const clock = manualClock();
    const budget = new RetryBudget({ budgetPercent: 50, minRetries: 0, windowMs: 10_000, slotMs: 1000, now: clock.now });
    requests(budget, 10); // slot 0
    clock.set(5000);
    requests(budget, 10); // slot 5
    expect(drain(budget)).toBe(10);
    clock.set(9999); // both slots still in the window
    expect(drain(budget)).toBe(0);
    clock.set(10_000); // slot 0 has left: 10 requests, and the 10 retries (slot 5) remain
    expect(drain(budget)).toBe(0);
    clock.set(15_000); // everything has left
    requests(budget, 4);
    expect(drain(budget)).toBe(2);
  });
});

describe('SlidingWindow', () => {
  it('keeps lanes apart, sums over the window and clears', () => {
    const clock = manualClock();
    const window = new SlidingWindow({ lanes: 2, slots: 3, slotMs: 100, now: clock.now });
    window.add(0, 5);
    window.add(1);
    clock.set(250);
    window.add(0);
    expect([window.sum(0), window.sum(1)]).toEqual([6, 1]);
    clock.set(300); // the first slot left
    expect([window.sum(0), window.sum(1)]).toEqual([1, 0]);
    window.clear();
    expect(window.sum(0)).toBe(0);
  });

  it('empties after a clock jump of many windows, and reuses its slots afterwards', () => {
    const clock = manualClock();
    const window = new SlidingWindow({ lanes: 1, slots: 3, slotMs: 100, now: clock.now });
    window.add(0, 7);
    clock.set(1_000_000);
    expect(window.sum(0)).toBe(0);
    window.add(0, 2);
    clock.set(1_000_100);
    window.add(0, 3);
    expect(window.sum(0)).toBe(5);
  });

  it('counts into the newest slot when the clock steps back', () => {
    const clock = manualClock();
    const window = new SlidingWindow({ lanes: 1, slots: 3, slotMs: 100, now: clock.now });
    clock.set(200);
    window.add(0);
    clock.set(0);
    window.add(0);
    expect(window.sum(0)).toBe(2);
    clock.set(499); // the slot at 200 is still in the window ...
    expect(window.sum(0)).toBe(2);
    clock.set(500); // ... and leaves with both counts
    expect(window.sum(0)).toBe(0);
  });
});
