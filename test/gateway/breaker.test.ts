import { describe, expect, it } from '@jest/globals';
import { BreakerRegistry, CircuitBreaker, type BreakerSettings, type KeyedTransition, type Transition } from '../../src/gateway/breaker.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

// Open for less than the window, so that the failures that opened the breaker are still in it when it closes.
const settings: BreakerSettings = { failureRatio: 0.5, minRequests: 10, windowSeconds: 30, openSeconds: 10 };

function setup(options: { probeTimeoutMs?: number } = {}) {
  const clock = manualClock();
  const transitions: string[] = [];
  const breaker = new CircuitBreaker({
    settings,
    now: clock.now,
    onTransition: ({ from, to, reason }: Transition) => transitions.push(`${from}>${to}:${reason}`),
    ...options,
  });
  return { clock, breaker, transitions };
}

function outcomes(breaker: CircuitBreaker, successes: number, failures: number): void {
  for (let i = 0; i < successes; i++) breaker.success();
  for (let i = 0; i < failures; i++) breaker.failure();
}

/** Opens the breaker and waits out openSeconds, leaving it half-open. */
function halfOpen({ clock, breaker }: ReturnType<typeof setup>): void {
  outcomes(breaker, 0, 10);
  clock.advance(10_000);
  expect(breaker.state).toBe('half_open');
}

describe('CircuitBreaker, closed', () => {
  it('opens when the failure ratio reaches failureRatio over at least minRequests', () => {
    const { breaker, transitions } = setup();
    outcomes(breaker, 5, 4); // 9 requests
    expect(breaker.state).toBe('closed');
    breaker.failure(); // 10 requests, 5 failures: 0.5
    expect(breaker.state).toBe('open');
    expect(breaker.allow()).toBe(false);
    expect(transitions).toEqual(['closed>open:failure_ratio']);
  });

  it('stays closed below minRequests, however many of them failed', () => {
    const { breaker } = setup();
    outcomes(breaker, 0, 9);
    expect(breaker.state).toBe('closed');
    expect(breaker.allow()).toBe(true);
  });

  it('stays closed below the ratio', () => {
    const { breaker } = setup();
    outcomes(breaker, 11, 10); // 21 requests, 0.476
    expect(breaker.state).toBe('closed');
    breaker.failure(); // 22 requests, 0.5
    expect(breaker.state).toBe('open');
  });

  it('judges only the window: failures older than windowSeconds no longer count', () => {
    const { clock, breaker } = setup();
    outcomes(breaker, 0, 9);
    clock.advance(30_000);
    outcomes(breaker, 0, 9);
    expect(breaker.state).toBe('closed');
    breaker.failure();
    expect(breaker.state).toBe('open');
  });
});

describe('CircuitBreaker, open and half-open', () => {
  it('refuses every request for openSeconds, then becomes half-open', () => {
    const { clock, breaker, transitions } = setup();
    outcomes(breaker, 0, 10);
    clock.advance(9999);
    expect(breaker.allow()).toBe(false);
    expect(breaker.gauge).toBe(1);
    clock.advance(1);
    expect(breaker.state).toBe('half_open');
    expect(breaker.gauge).toBe(2);
    expect(transitions).toEqual(['closed>open:failure_ratio', 'open>half_open:open_elapsed']);
  });

  it('ignores outcomes reported while open (requests admitted before it opened)', () => {
    const { clock, breaker } = setup();
    outcomes(breaker, 0, 10);
    outcomes(breaker, 100, 0);
    expect(breaker.state).toBe('open');
    clock.advance(10_000);
    expect(breaker.state).toBe('half_open');
  });

  it('admits one probe at a time while half-open', () => {
    const env = setup();
    halfOpen(env);
    const { breaker } = env;
    expect(breaker.allow()).toBe(true);
    expect(breaker.allow()).toBe(false);
    breaker.success();
    expect(breaker.allow()).toBe(true);
  });

  it('closes after 3 successful probes, with a clean window', () => {
    const env = setup();
    halfOpen(env);
    const { breaker, transitions } = env;
    for (let probe = 0; probe < 2; probe++) {
      expect(breaker.allow()).toBe(true);
      breaker.success();
      expect(breaker.state).toBe('half_open');
    }
    expect(breaker.allow()).toBe(true);
    breaker.success();
    expect(breaker.state).toBe('closed');
    expect(breaker.gauge).toBe(0);
    expect(transitions.at(-1)).toBe('half_open>closed:probes_succeeded');
    // The 10 failures that opened it, 10 s ago, are forgotten: 9 more do not reach minRequests.
    outcomes(breaker, 0, 9);
    expect(breaker.state).toBe('closed');
  });

  it('re-opens on a failed probe, for another openSeconds', () => {
    const env = setup();
    halfOpen(env);
    const { clock, breaker, transitions } = env;
    expect(breaker.allow()).toBe(true);
    breaker.success();
    expect(breaker.allow()).toBe(true);
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(transitions.at(-1)).toBe('half_open>open:probe_failed');
    clock.advance(9999);
    expect(breaker.allow()).toBe(false);
    clock.advance(1);
    // A fresh half-open period: the success before the failure does not count towards closing.
    for (let probe = 0; probe < 2; probe++) {
      expect(breaker.allow()).toBe(true);
      breaker.success();
    }
    expect(breaker.state).toBe('half_open');
  });

  it('frees the probe slot on release, without counting it as a success', () => {
    const env = setup();
    halfOpen(env);
    const { breaker } = env;
    for (let probe = 0; probe < 5; probe++) {
      expect(breaker.allow()).toBe(true);
      breaker.release();
    }
    expect(breaker.state).toBe('half_open');
  });

  it('takes a probe that never reported as lost after probeTimeoutMs, rather than refusing forever', () => {
    const env = setup({ probeTimeoutMs: 5000 });
    halfOpen(env);
    const { clock, breaker } = env;
    expect(breaker.allow()).toBe(true);
    clock.advance(4999);
    expect(breaker.allow()).toBe(false);
    clock.advance(1);
    expect(breaker.allow()).toBe(true);
  });
});

describe('BreakerRegistry', () => {
  function registry() {
    const clock = manualClock();
    const transitions: KeyedTransition[] = [];
    const breakers = new BreakerRegistry(settings, { now: clock.now, onTransition: (t) => transitions.push(t) });
    return { clock, breakers, transitions };
  }

  it('creates one breaker per provider and model, on first use', () => {
    const { breakers } = registry();
    expect([...breakers.entries()]).toEqual([]);
    const a = breakers.get('openai', 'gpt-4o-2024-08-06');
    expect(breakers.get('openai', 'gpt-4o-2024-08-06')).toBe(a);
    expect(breakers.get('azure', 'gpt-4o-2024-08-06')).not.toBe(a);
    expect([...breakers.entries()].map(([key]) => key)).toEqual(['openai/gpt-4o-2024-08-06', 'azure/gpt-4o-2024-08-06']);
  });

  it('keeps breakers apart and names the key in transitions', () => {
    const { breakers, transitions } = registry();
    outcomes(breakers.get('openai', 'm'), 0, 10);
    expect(breakers.get('openai', 'm').state).toBe('open');
    expect(breakers.get('azure', 'm').state).toBe('closed');
    expect(transitions).toEqual([{ key: 'openai/m', from: 'closed', to: 'open', reason: 'failure_ratio' }]);
  });

  it('keeps its breakers, open ones included, across a reload with the same settings', () => {
    const { breakers } = registry();
    const open = breakers.get('openai', 'm');
    outcomes(open, 0, 10);
    breakers.reload({ ...settings });
    expect(breakers.get('openai', 'm')).toBe(open);
    expect(open.state).toBe('open');
  });

  it('replaces its breakers when the settings change, reporting the ones that were not closed', () => {
    const { breakers, transitions } = registry();
    outcomes(breakers.get('openai', 'm'), 0, 10);
    const closed = breakers.get('azure', 'm');
    breakers.reload({ ...settings, minRequests: 20 });
    expect(transitions.at(-1)).toEqual({ key: 'openai/m', from: 'open', to: 'closed', reason: 'reloaded' });
    expect(transitions).toHaveLength(2);
    const fresh = breakers.get('openai', 'm');
    expect(fresh.state).toBe('closed');
    expect(breakers.get('azure', 'm')).not.toBe(closed);
    // The new settings apply: 10 failures no longer reach minRequests.
    outcomes(fresh, 0, 19);
    expect(fresh.state).toBe('closed');
    fresh.failure();
    expect(fresh.state).toBe('open');
  });
});
