/**
 * What the controller decides per environment from metrics rather than from the spec alone: flag percentages
 * (rollout steps and their analysis) and budget spend. The reconciler asks a planner; the planner without Prometheus
 * applies each flag's fixed percentage and leaves spend unmeasured.
 */
import type { LLMRoute, Environment, LLMRouteStatus } from '../api/schema.js';
import type { ConditionInput } from './conditions.js';
import type { RouteObject } from './reconcile.js';

type EnvironmentStatus = NonNullable<LLMRouteStatus['environments']>[number];
export type FlagStatus = NonNullable<EnvironmentStatus['flags']>[number];
export type Spend = NonNullable<EnvironmentStatus['spend']>;

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface EnvironmentPlan {
  /** Flag name → percentage of traffic, compiled into the gateway config. */
  percents: Record<string, number>;
  flags: FlagStatus[];
  spend?: Spend;
  /** `BudgetExceeded` for this environment, when spend is measured. */
  budget?: ConditionInput;
  events: PlannedEvent[];
  /** Rollouts aborted by analysis or by an operator. */
  degraded: { message: string }[];
  /** Rollouts still stepping. */
  progressing: { message: string }[];
  /** Rollouts held by an operator's `pause` (Progressing=Unknown when nothing else progresses). */
  paused?: { message: string }[];
  requeueAfterMs?: number;
}

export interface EnvironmentPlanner {
  plan(object: RouteObject, route: LLMRoute, environment: Environment, previous: EnvironmentStatus | undefined, now: Date): Promise<EnvironmentPlan>;
}

/** Flags apply in the environments they name, or in all. */
export const flagsIn = (route: LLMRoute, environment: string) => (route.spec.flags ?? []).filter((f) => !f.environments || f.environments.includes(environment));

/** Without Prometheus: fixed percentages only. A flag with a rollout stays at 0% and says why. */
export const staticPlanner: EnvironmentPlanner = {
  async plan(_object, route, environment) {
    const flags = flagsIn(route, environment.name);
    return {
      percents: Object.fromEntries(flags.map((f) => [f.name, f.rollout ? 0 : (f.percent ?? 0)])),
      flags: flags.map((f) =>
        f.rollout
          ? { name: f.name, percent: 0, state: 'Paused' as const, message: 'automated rollouts need the controller to run with --prometheus-url' }
          : { name: f.name, percent: f.percent ?? 0 },
      ),
      events: [],
      degraded: [],
      progressing: [],
    };
  },
};
