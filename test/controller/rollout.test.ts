import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { Flag, FlagStatus as FlagStatusSchema, type LLMRouteInput } from '../../src/api/schema.js';
import type { Verdict } from '../../src/controller/analysis.js';
import {
  decideRollout,
  readRolloutCommand,
  ROLLOUT_COMMANDS,
  type FlagStatus,
  type RolloutCommand,
  type RolloutResult,
} from '../../src/controller/rollout.js';

type FlagInput = NonNullable<NonNullable<LLMRouteInput['spec']>['flags']>[number];

const T0 = new Date('2025-03-01T12:00:00Z');
const minutes = (n: number) => new Date(T0.getTime() + n * 60_000);

const flagOf = (overrides: Partial<FlagInput> = {}) =>
  Flag.parse({
    name: 'canary',
    set: { models: { chat: { pin: 'gpt-4.1-2025-04-14' } } },
    rollout: { steps: [10, 50, 100], interval: '5m', analysis: { maxErrorRatio: 0.02, minRequests: 50 } },
    ...overrides,
  });

const PASS: Verdict = { verdict: 'pass', reason: 'AnalysisPassed', message: 'error ratio 0.4% <= max 2% (baseline 0.5%); 812 requests over 5m' };
const FAIL: Verdict = { verdict: 'fail', reason: 'ThresholdExceeded', message: 'error ratio 4.1% > max 2% (baseline 0.5%); 812 requests over 5m' };
const THIN: Verdict = { verdict: 'inconclusive', reason: 'NotEnoughRequests', message: '12 requests over 5m, 50 needed (baseline 340)' };

/** The schema with the two fields rollout.ts needs FlagStatus to gain. */
const ProposedFlagStatus = FlagStatusSchema.extend({
  specHash: z.string().max(16).optional(),
  command: z.enum(ROLLOUT_COMMANDS).optional(),
});

interface Step {
  flag?: ReturnType<typeof flagOf>;
  previous: FlagStatus | undefined;
  at: Date;
  command?: RolloutCommand;
  verdict?: Verdict;
}

/** One reconcile as the controller does it: decide, and if asked, analyse and decide again. Counts analyses. */
function reconcile({ flag = flagOf(), previous, at, command, verdict }: Step): RolloutResult & { analysed: boolean } {
  const input = { flag, environment: 'production', previous, now: at, command };
  const first = decideRollout(input);
  const analysed = first.kind === 'analyze';
  const result = analysed ? decideRollout({ ...input, verdict: verdict ?? fail('the rollout asked for an analysis the test did not give') }) : first;
  if (result.kind !== 'status') throw new Error('asked for an analysis twice');
  // Every status must fit the API (with the proposed fields), or the status write would be refused.
  expect(ProposedFlagStatus.parse(result.status)).toEqual(result.status);
  return { ...result, analysed };
}

function fail(message: string): never {
  throw new Error(message);
}

const started = () => reconcile({ previous: undefined, at: T0 }).status;

describe('decideRollout: stepping', () => {
  it('starts at the first step, Progressing, and comes back after the interval', () => {
    const result = reconcile({ previous: undefined, at: T0 });
    expect(result.status).toMatchObject({ name: 'canary', percent: 10, step: 0, state: 'Progressing', lastStepTime: '2025-03-01T12:00:00Z' });
    expect(ProposedFlagStatus.parse(result.status)).toEqual(result.status);
    expect(result.requeueAfterMs).toBe(5 * 60_000);
    expect(result.event).toEqual({ type: 'Normal', reason: 'RolloutStarted', message: 'flag "canary" in production: rollout started; now at 10% (step 1 of 3)' });
    expect(result.condition).toMatchObject({ type: 'Progressing', status: 'True', reason: 'RolloutProgressing' });
  });

  it('waits out the interval without analysing, and changes nothing while it waits', () => {
    const previous = started();
    const result = reconcile({ previous, at: minutes(2) });
    expect(result.analysed).toBe(false);
    expect(result.status).toEqual(previous);
    expect(result.event).toBeUndefined();
    expect(result.requeueAfterMs).toBe(3 * 60_000);
  });

  it('asks for an analysis once the interval is over, and advances on a pass', () => {
    const due = decideRollout({ flag: flagOf(), environment: 'production', previous: started(), now: minutes(5), command: undefined });
    expect(due).toEqual({ kind: 'analyze' });

    const result = reconcile({ previous: started(), at: minutes(5), verdict: PASS });
    expect(result.status).toMatchObject({ percent: 50, step: 1, state: 'Progressing', lastStepTime: '2025-03-01T12:05:00Z' });
    expect(result.event).toMatchObject({ type: 'Normal', reason: 'RolloutAdvanced' });
    expect(result.event?.message).toContain('analysis passed at 10% (step 1 of 3): error ratio 0.4% <= max 2%');
    expect(result.event?.message).toContain('now at 50% (step 2 of 3)');
    expect(result.requeueAfterMs).toBe(5 * 60_000);
  });

  it('succeeds at 100% and then stays there without further analysis', () => {
    const at50 = reconcile({ previous: started(), at: minutes(5), verdict: PASS }).status;
    const done = reconcile({ previous: at50, at: minutes(10), verdict: PASS });
    expect(done.status).toMatchObject({ percent: 100, step: 2, state: 'Succeeded' });
    expect(done.event).toMatchObject({ type: 'Normal', reason: 'RolloutSucceeded' });
    expect(done.requeueAfterMs).toBeUndefined();
    expect(done.condition).toBeUndefined();

    const later = reconcile({ previous: done.status, at: minutes(600) });
    expect(later.analysed).toBe(false);
    expect(later.status).toEqual(done.status);
    expect(later.event).toBeUndefined();
  });

  it('holds the step on an inconclusive analysis, rechecks within a minute, and advances once it passes', () => {
    const previous = started();
    const held = reconcile({ previous, at: minutes(5), verdict: THIN });
    expect(held.status).toMatchObject({ percent: 10, step: 0, state: 'Progressing', lastStepTime: previous.lastStepTime });
    expect(held.status.message).toBe('holding at 10% (step 1 of 3); analysis inconclusive: 12 requests over 5m, 50 needed (baseline 340)');
    expect(held.event).toBeUndefined();
    expect(held.requeueAfterMs).toBe(60_000);
    expect(held.condition).toMatchObject({ type: 'Progressing', status: 'True' });

    const later = reconcile({ previous: held.status, at: minutes(6), verdict: PASS });
    expect(later.status).toMatchObject({ percent: 50, step: 1 });
  });

  it('rolls back to 0% on a failed analysis, with the measured numbers, and stays rolled back', () => {
    const at50 = reconcile({ previous: started(), at: minutes(5), verdict: PASS }).status;
    const failed = reconcile({ previous: at50, at: minutes(10), verdict: FAIL });
    expect(failed.status).toMatchObject({ percent: 0, step: 1, state: 'RolledBack', lastStepTime: '2025-03-01T12:10:00Z' });
    expect(failed.status.message).toBe('analysis failed at 50% (step 2 of 3): error ratio 4.1% > max 2% (baseline 0.5%); 812 requests over 5m; rolled back to 0%');
    expect(failed.event).toEqual({ type: 'Warning', reason: 'RolloutAborted', message: `flag "canary" in production: ${failed.status.message}` });
    expect(failed.condition).toEqual({ type: 'Degraded', status: 'True', reason: 'RolloutAborted', message: `flag "canary" in production: ${failed.status.message}` });
    expect(failed.requeueAfterMs).toBeUndefined();

    const later = reconcile({ previous: failed.status, at: minutes(600) });
    expect(later.analysed).toBe(false);
    expect(later.status).toEqual(failed.status);
    expect(later.event).toBeUndefined();
  });

  it('restarts from the first step when the flag changes, whatever state it was in', () => {
    const failed = reconcile({ previous: started(), at: minutes(5), verdict: FAIL }).status;
    const changed = flagOf({ set: { models: { chat: { pin: 'gpt-4.1-2025-05-01' } } } });
    const result = reconcile({ flag: changed, previous: failed, at: minutes(20) });
    expect(result.status).toMatchObject({ percent: 10, step: 0, state: 'Progressing', lastStepTime: '2025-03-01T12:20:00Z' });
    expect(result.status.specHash).not.toBe(failed.specHash);
    expect(result.event).toMatchObject({ type: 'Normal', reason: 'RolloutRestarted' });

    // A change that does not touch what the rollout depends on (the ignored fixed percent) restarts nothing.
    const cosmetic = reconcile({ flag: flagOf({ percent: 30 }), previous: started(), at: minutes(1) });
    expect(cosmetic.status).toEqual(started());
  });
});

describe('decideRollout: operator commands', () => {
  it('pause holds the step and still rolls back on a failed analysis', () => {
    const previous = started();
    const paused = reconcile({ previous, at: minutes(1), command: 'pause' });
    expect(paused.status).toMatchObject({ percent: 10, state: 'Paused', command: 'pause', lastStepTime: previous.lastStepTime });
    expect(paused.event).toMatchObject({ type: 'Normal', reason: 'RolloutPaused' });
    expect(paused.condition).toMatchObject({ type: 'Progressing', status: 'Unknown', reason: 'RolloutPaused' });

    const stillPaused = reconcile({ previous: paused.status, at: minutes(30), command: 'pause', verdict: PASS });
    expect(stillPaused.analysed).toBe(true);
    expect(stillPaused.status).toMatchObject({ percent: 10, step: 0, state: 'Paused' });
    expect(stillPaused.event).toBeUndefined();
    expect(stillPaused.requeueAfterMs).toBe(60_000);

    const failed = reconcile({ previous: paused.status, at: minutes(30), command: 'pause', verdict: FAIL });
    expect(failed.status).toMatchObject({ percent: 0, state: 'RolledBack' });
  });

  it('resume (or removing pause) continues from the same step, analysing at once if the interval is over', () => {
    const paused = reconcile({ previous: started(), at: minutes(1), command: 'pause' }).status;
    const early = reconcile({ previous: paused, at: minutes(2), command: 'resume' });
    expect(early.status).toMatchObject({ percent: 10, state: 'Progressing', message: 'resumed by operator at 10% (step 1 of 3)' });
    expect(early.event).toMatchObject({ type: 'Normal', reason: 'RolloutResumed' });
    expect(early.requeueAfterMs).toBe(3 * 60_000);

    const late = reconcile({ previous: paused, at: minutes(30), verdict: PASS });
    expect(late.analysed).toBe(true);
    expect(late.status).toMatchObject({ percent: 50, step: 1, state: 'Progressing' });
  });

  it('promote goes to 100% once; a promote left in place does not promote the next version of the flag', () => {
    const promoted = reconcile({ previous: started(), at: minutes(1), command: 'promote' });
    expect(promoted.status).toMatchObject({ percent: 100, state: 'Succeeded', message: 'promoted to 100% by operator' });
    expect(promoted.event).toMatchObject({ type: 'Normal', reason: 'RolloutPromoted' });

    const again = reconcile({ previous: promoted.status, at: minutes(2), command: 'promote' });
    expect(again.event).toBeUndefined();
    expect(again.status).toEqual(promoted.status);

    const changed = flagOf({ rollout: { steps: [5, 100], interval: '5m' } });
    const next = reconcile({ flag: changed, previous: promoted.status, at: minutes(3), command: 'promote' });
    expect(next.status).toMatchObject({ percent: 5, step: 0, state: 'Progressing' });
  });

  it('abort rolls back to 0% and holds, even across a spec change, until an explicit resume', () => {
    const at50 = reconcile({ previous: started(), at: minutes(5), verdict: PASS }).status;
    const aborted = reconcile({ previous: at50, at: minutes(6), command: 'abort' });
    expect(aborted.status).toMatchObject({ percent: 0, state: 'RolledBack', message: 'aborted by operator at 50%; rolled back to 0%' });
    expect(aborted.event).toMatchObject({ type: 'Warning', reason: 'RolloutAborted' });
    expect(aborted.condition).toMatchObject({ type: 'Degraded', status: 'True', reason: 'RolloutAborted' });

    const stillAborted = reconcile({ previous: aborted.status, at: minutes(60), command: 'abort' });
    expect(stillAborted.event).toBeUndefined();
    expect(stillAborted.status).toEqual(aborted.status);

    const changed = flagOf({ set: { models: { chat: { pin: 'gpt-4.1-2025-05-01' } } } });
    expect(reconcile({ flag: changed, previous: aborted.status, at: minutes(61), command: 'abort' }).status).toMatchObject({ percent: 0, state: 'RolledBack' });

    const removed = reconcile({ previous: aborted.status, at: minutes(62) });
    expect(removed.status).toMatchObject({ percent: 0, state: 'RolledBack' });
    expect(removed.event).toBeUndefined();

    const resumed = reconcile({ previous: removed.status, at: minutes(63), command: 'resume' });
    expect(resumed.status).toMatchObject({ percent: 10, step: 0, state: 'Progressing', command: 'resume' });
    expect(resumed.event).toMatchObject({ type: 'Normal', reason: 'RolloutRestarted' });
  });

  it('a resume left in place does not restart a rollout the analysis rolled back', () => {
    const resumed = reconcile({ previous: started(), at: minutes(1), command: 'resume' }).status;
    const failed = reconcile({ previous: resumed, at: minutes(5), command: 'resume', verdict: FAIL }).status;
    expect(failed).toMatchObject({ percent: 0, state: 'RolledBack' });
    const next = reconcile({ previous: failed, at: minutes(6), command: 'resume' });
    expect(next.status).toMatchObject({ percent: 0, state: 'RolledBack' });
    expect(next.event).toBeUndefined();
  });

  it('reads the command annotation; an unknown value holds the rollout and says why', () => {
    expect(readRolloutCommand(undefined, 'canary')).toEqual({});
    expect(readRolloutCommand({ 'rollout.llmroute.dev/other': 'abort' }, 'canary')).toEqual({});
    expect(readRolloutCommand({ 'rollout.llmroute.dev/canary': ' Pause ' }, 'canary')).toEqual({ command: 'pause' });
    expect(readRolloutCommand({ 'rollout.llmroute.dev/canary': 'pasue' }, 'canary')).toEqual({
      command: 'pause',
      problem: 'annotation rollout.llmroute.dev/canary="pasue" is not one of pause, resume, promote, abort; holding the rollout as if paused',
    });
  });
});

describe('decideRollout: edges', () => {
  it('a flag without a rollout has its fixed percent, or 0, and no rollout state', () => {
    const fixed = reconcile({ flag: flagOf({ rollout: undefined, percent: 25 }), previous: undefined, at: T0 });
    expect(fixed).toEqual({ kind: 'status', status: { name: 'canary', percent: 25 }, analysed: false });
    const none = reconcile({ flag: flagOf({ rollout: undefined }), previous: undefined, at: T0 });
    expect(none.status).toEqual({ name: 'canary', percent: 0 });
  });

  it('steps [100] succeeds at once', () => {
    const result = reconcile({ flag: flagOf({ rollout: { steps: [100], interval: '5m' } }), previous: undefined, at: T0 });
    expect(result.status).toMatchObject({ percent: 100, step: 0, state: 'Succeeded' });
    expect(result.event).toMatchObject({ type: 'Normal', reason: 'RolloutSucceeded' });
    expect(result.requeueAfterMs).toBeUndefined();
  });

  it('a lastStepTime in the future (clock skew) restarts the interval now instead of waiting for that clock', () => {
    const previous = { ...started(), lastStepTime: '2025-03-01T13:00:00Z' };
    const result = reconcile({ previous, at: minutes(1) });
    expect(result.analysed).toBe(false);
    expect(result.status).toMatchObject({ percent: 10, step: 0, lastStepTime: '2025-03-01T12:01:00Z' });
    expect(result.requeueAfterMs).toBe(5 * 60_000);
    expect(result.event).toBeUndefined();
    // Five minutes after the rebased time, not after 13:00, the step is analysed.
    expect(reconcile({ previous: result.status, at: minutes(6), verdict: PASS }).status.percent).toBe(50);
  });

  it('an unreadable lastStepTime is treated the same way', () => {
    const result = reconcile({ previous: { ...started(), lastStepTime: 'yesterday' }, at: minutes(1) });
    expect(result.status.lastStepTime).toBe('2025-03-01T12:01:00Z');
  });

  it('keeps the status message within the schema bound when the analysis says a lot', () => {
    const long: Verdict = { ...FAIL, message: `cannot measure the flag: ${'x'.repeat(5000)}` };
    const result = reconcile({ previous: started(), at: minutes(5), verdict: long });
    expect(result.status.message).toHaveLength(1024);
    expect(() => ProposedFlagStatus.parse(result.status)).not.toThrow();
  });
});
