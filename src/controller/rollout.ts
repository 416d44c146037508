/**
 * The rollout of one flag in one environment, as a pure decision: from the flag, the status written last time, the
 * clock, the operator's command and (when a step is due) the analysis verdict, to the next status, when to look
 * again, and what to tell people. The controller is level-triggered and calls this on every reconcile, so a call
 * that changes nothing returns the same status, no event and a requeue.
 *
 * Commands come from the LLMRoute annotation `rollout.llmroute.dev/<flag>`. `pause` and `abort` hold for as long as
 * they are set. `promote`, and `resume` after a rollback, act once, when they appear: the status remembers the
 * command it last saw, so a `resume` left in place cannot restart a rollout the analysis has just rolled back, and a
 * stale `promote` cannot send the next version of the flag straight to 100%.
 */
import type { z } from 'zod';
import { ROLLOUT_COMMANDS } from '../api/schema.js';
import { canonicalJson } from '../api/canonical-json.js';
import { shortHash } from '../api/names.js';
import { durationToMilliseconds } from '../api/patterns.js';
import type { Condition, Flag, FlagStatus as FlagStatusSchema } from '../api/schema.js';
import type { Verdict } from './analysis.js';

export { ROLLOUT_COMMANDS };
export type RolloutCommand = (typeof ROLLOUT_COMMANDS)[number];
/** A flag's status, including what the rollout remembers between reconciles (`specHash`, `command`). */
export type FlagStatus = z.output<typeof FlagStatusSchema>;

export interface RolloutInput {
  flag: Flag;
  environment: string;
  /** The flag's status in this environment from the last reconcile; undefined the first time. */
  previous: FlagStatus | undefined;
  now: Date;
  command: RolloutCommand | undefined;
  /** The analysis of the current step; give it when a decision asked for it (`kind: 'analyze'`). */
  verdict?: Verdict;
}

export interface RolloutEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** What this flag says about the route's conditions; the controller merges these and sets the times. */
export type ConditionContribution = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

export interface RolloutResult {
  kind: 'status';
  status: FlagStatus;
  /** When to reconcile again at the latest; undefined when only a change to the object can move the rollout. */
  requeueAfterMs?: number;
  /** Set when the percentage or the state changed. */
  event?: RolloutEvent;
  condition?: ConditionContribution;
}

/** A step is due and no verdict was given: measure the step, then decide again with `verdict`. */
export interface AnalysisNeeded {
  kind: 'analyze';
}

export type RolloutDecision = RolloutResult | AnalysisNeeded;

export function rolloutAnnotation(flagName: string): string {
  return `rollout.llmroute.dev/${flagName}`;
}

/**
 * The operator's command for a flag. An unknown value holds the rollout as `pause` would: a mistyped "pause" must
 * not let it advance. `problem` says why, for a Warning event.
 */
export function readRolloutCommand(annotations: Record<string, string> | undefined, flagName: string): { command?: RolloutCommand; problem?: string } {
  const key = rolloutAnnotation(flagName);
  const raw = annotations?.[key];
  if (raw === undefined) return {};
  const value = raw.trim().toLowerCase();
  if ((ROLLOUT_COMMANDS as readonly string[]).includes(value)) return { command: value as RolloutCommand };
  return { command: 'pause', problem: `annotation ${key}="${raw}" is not one of ${ROLLOUT_COMMANDS.join(', ')}; holding the rollout as if paused` };
}

/** Changing what the flag serves, who gets it or how it is rolled out starts the rollout again from the first step. */
export function rolloutSpecHash(flag: Flag): string {
  return shortHash(canonicalJson({ set: flag.set, stickyBy: flag.stickyBy, rollout: flag.rollout }), 16);
}

/** How often an inconclusive or paused step is measured again: often enough to notice traffic, cheap for Prometheus. */
const RECHECK_MS = 60_000;
/** Never requeue sooner, so rounding cannot spin the reconcile loop. */
const MIN_REQUEUE_MS = 1000;
/** FlagStatus.message's bound in the schema. */
const MAX_MESSAGE = 1024;

export function decideRollout(input: RolloutInput): RolloutDecision {
  const { flag, previous, now, command, verdict } = input;
  const rollout = flag.rollout;
  if (!rollout) return { kind: 'status', status: { name: flag.name, percent: flag.percent ?? 0 } };

  const steps = rollout.steps;
  const intervalMs = durationToMilliseconds(rollout.interval);
  const specHash = rolloutSpecHash(flag);
  const label = `flag "${flag.name}" in ${input.environment}`;
  const at = (step: number) => `${percentAt(steps, step)}% (step ${step + 1} of ${steps.length})`;
  const newly = (wanted: RolloutCommand) => command === wanted && previous?.command !== wanted;

  const status = (fields: Omit<FlagStatus, 'name' | 'specHash' | 'command'>): FlagStatus => {
    const { message, ...rest } = fields;
    return {
      name: flag.name,
      ...rest,
      ...(message === undefined ? {} : { message: message.slice(0, MAX_MESSAGE) }),
      specHash,
      ...(command === undefined ? {} : { command }),
    };
  };
  const result = (next: FlagStatus, requeueAfterMs: number | undefined, event?: RolloutEvent): RolloutResult => ({
    kind: 'status',
    status: next,
    ...(requeueAfterMs === undefined ? {} : { requeueAfterMs: Math.max(MIN_REQUEUE_MS, requeueAfterMs) }),
    ...(event ? { event: { ...event, message: `${label}: ${event.message}` } } : {}),
    ...conditionFor(next, label),
  });
  const stamp = toRfc3339(now);

  /** Enters a step: the percentage changes now, so the interval starts now. */
  const enter = (step: number, reason: string, why: string): RolloutResult => {
    const percent = percentAt(steps, step);
    const state = percent === 100 ? 'Succeeded' : command === 'pause' ? 'Paused' : 'Progressing';
    const message = state === 'Succeeded' ? `${why}; now at 100%` : `${why}; now at ${at(step)}${state === 'Paused' ? ', paused by operator' : ''}`;
    return result(status({ percent, step, state, lastStepTime: stamp, message }), state === 'Succeeded' ? undefined : intervalMs, {
      type: 'Normal',
      reason: state === 'Succeeded' ? 'RolloutSucceeded' : reason,
      message,
    });
  };
  const rollBack = (step: number, message: string): RolloutResult =>
    result(status({ percent: 0, step, state: 'RolledBack', lastStepTime: stamp, message }), undefined, { type: 'Warning', reason: 'RolloutAborted', message });
  /** Nothing to do until the object changes: the same status, the command seen recorded. */
  const keep = (held: FlagStatus): RolloutResult => result(status(strip(held)), undefined);

  // The previous status counts only if it describes this version of the flag.
  const current = previous?.specHash === specHash && previous.state !== undefined && previous.step !== undefined && steps[previous.step] !== undefined ? previous : undefined;

  if (command === 'abort') {
    if (current?.state === 'RolledBack') return keep(current);
    return rollBack(current?.step ?? 0, `aborted by operator at ${current?.percent ?? 0}%; rolled back to 0%`);
  }
  if (newly('promote') && current?.state !== 'Succeeded') {
    const message = 'promoted to 100% by operator';
    return result(status({ percent: 100, step: steps.length - 1, state: 'Succeeded', lastStepTime: stamp, message }), undefined, { type: 'Normal', reason: 'RolloutPromoted', message });
  }
  if (!current) {
    return previous?.state === undefined
      ? enter(0, 'RolloutStarted', 'rollout started')
      : enter(0, 'RolloutRestarted', 'the flag changed, so the rollout restarted from the first step');
  }
  if (current.state === 'RolledBack') {
    return newly('resume') ? enter(0, 'RolloutRestarted', 'resumed by operator after the rollback, from the first step') : keep(current);
  }
  if (current.state === 'Succeeded') return keep(current);

  // Progressing or Paused, at a step before the last.
  const step = current.step as number;
  const state = command === 'pause' ? 'Paused' : 'Progressing';
  const toggled = state !== current.state;
  const toggleMessage = `${state === 'Paused' ? 'paused' : 'resumed'} by operator at ${at(step)}`;
  const toggleEvent: RolloutEvent | undefined = toggled ? { type: 'Normal', reason: state === 'Paused' ? 'RolloutPaused' : 'RolloutResumed', message: toggleMessage } : undefined;
  // A lastStepTime in the future (another replica's clock, a hand edit) or unreadable restarts the interval now,
  // rather than holding the step for however far ahead that clock was.
  const started = Date.parse(current.lastStepTime ?? '');
  const lastStepTime = Number.isNaN(started) || started > now.getTime() ? stamp : (current.lastStepTime as string);
  const elapsedMs = now.getTime() - Date.parse(lastStepTime);
  const hold = (message: string | undefined, requeueAfterMs: number) =>
    result(status({ percent: current.percent, step, state, lastStepTime, ...(message === undefined ? {} : { message }) }), requeueAfterMs, toggleEvent);

  if (elapsedMs < intervalMs) return hold(toggled ? toggleMessage : current.message, intervalMs - elapsedMs);
  // Analysis runs while paused too: a pause stops the flag advancing, not the rollback that protects its traffic.
  if (!verdict) return { kind: 'analyze' };
  switch (verdict.verdict) {
    case 'fail':
      return rollBack(step, `analysis failed at ${at(step)}: ${verdict.message}; rolled back to 0%`);
    case 'inconclusive':
      return hold(`holding at ${at(step)}${state === 'Paused' ? ', paused by operator' : ''}; analysis inconclusive: ${verdict.message}`, Math.min(intervalMs, RECHECK_MS));
    case 'pass':
      if (state === 'Paused') return hold(`paused by operator at ${at(step)}; analysis passed: ${verdict.message}`, Math.min(intervalMs, RECHECK_MS));
      return enter(step + 1, 'RolloutAdvanced', `analysis passed at ${at(step)}: ${verdict.message}`);
  }
}

/** The steps end at 100 (a validation rule); past the last one is therefore full traffic. */
function percentAt(steps: readonly number[], step: number): number {
  return steps[step] ?? 100;
}

/** The fields `status()` sets again, removed so a held status is rebuilt the same way as a new one. */
function strip(previous: FlagStatus): Omit<FlagStatus, 'name' | 'specHash' | 'command'> {
  const { name: _name, specHash: _specHash, command: _command, ...rest } = previous;
  return rest;
}

function conditionFor(status: FlagStatus, label: string): { condition?: ConditionContribution } {
  const message = `${label}: ${status.message ?? `at ${status.percent}%`}`;
  switch (status.state) {
    case 'Progressing':
      return { condition: { type: 'Progressing', status: 'True', reason: 'RolloutProgressing', message } };
    case 'Paused':
      // As a paused Deployment reports: not progressing, but not stuck either.
      return { condition: { type: 'Progressing', status: 'Unknown', reason: 'RolloutPaused', message } };
    case 'RolledBack':
      return { condition: { type: 'Degraded', status: 'True', reason: 'RolloutAborted', message } };
    default:
      return {};
  }
}

/** Kubernetes writes times to the second. */
function toRfc3339(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
