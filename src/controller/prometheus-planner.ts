/**
 * The planner when the controller knows a Prometheus: flag rollouts step through their percentages with analysis,
 * and spend is measured against budgets. Prometheus being unreachable never breaks a reconcile: rollouts hold
 * (the analysis is inconclusive) and spend is Unknown.
 */
import type { Environment, LLMRoute } from '../api/schema.js';
import type { ConditionInput } from './conditions.js';
import { analysisWindowSeconds, runAnalysis } from './analysis.js';
import type { EnvironmentPlan, EnvironmentPlanner } from './plan.js';
import { flagsIn } from './plan.js';
import type { PrometheusClient } from './prometheus.js';
import { decideRollout, readRolloutCommand, type RolloutResult } from './rollout.js';
import { budgetCondition, measureSpend, type Spend } from './spend.js';

export class PrometheusPlanner implements EnvironmentPlanner {
  constructor(
    private readonly prometheus: PrometheusClient,
    private readonly log: (level: 'warn', message: string, fields?: Record<string, unknown>) => void,
  ) {}

  async plan(object: Parameters<EnvironmentPlanner['plan']>[0], route: LLMRoute, environment: Environment, previous: Parameters<EnvironmentPlanner['plan']>[3], now: Date): Promise<EnvironmentPlan> {
    const plan: EnvironmentPlan = { percents: {}, flags: [], events: [], degraded: [], progressing: [], paused: [] };
    const namespace = object.metadata.namespace;
    const requeues: number[] = [];
    for (const flag of flagsIn(route, environment.name)) {
      const { command, problem } = readRolloutCommand(object.metadata.annotations, flag.name);
      if (problem) plan.events.push({ type: 'Warning', reason: 'InvalidRolloutCommand', message: problem });
      const input = { flag, environment: environment.name, previous: previous?.flags?.find((f) => f.name === flag.name), now, command };
      let decision = decideRollout(input);
      if (decision.kind === 'analyze' && flag.rollout) {
        const target = { route: route.metadata.name, namespace, environment: environment.name, flag: { name: flag.name, set: flag.set }, windowSeconds: analysisWindowSeconds(flag.rollout.interval) };
        decision = decideRollout({ ...input, verdict: await runAnalysis(this.prometheus, target, flag.rollout.analysis, now) });
      }
      const result = decision as RolloutResult;
      plan.percents[flag.name] = result.status.percent;
      plan.flags.push(result.status);
      // decideRollout's messages already start with `flag "<name>" in <environment>:`.
      if (result.event) plan.events.push(result.event);
      if (result.requeueAfterMs !== undefined) requeues.push(result.requeueAfterMs);
      const contribution = result.condition;
      if (contribution?.type === 'Degraded' && contribution.status === 'True') plan.degraded.push({ message: contribution.message });
      if (contribution?.type === 'Progressing' && contribution.status === 'True') plan.progressing.push({ message: contribution.message });
      if (contribution?.type === 'Progressing' && contribution.status === 'Unknown') plan.paused?.push({ message: contribution.message });
    }
    let spend: Spend | undefined;
    if (environment.budget) {
      try {
        spend = await measureSpend(this.prometheus, { route: route.metadata.name, namespace, environment: environment.name }, now);
        plan.spend = spend;
      } catch (error) {
        this.log('warn', 'could not measure spend', { route: route.metadata.name, environment: environment.name, error: (error as Error).message });
      }
    }
    plan.budget = budgetCondition(spend, environment.budget, now) as ConditionInput;
    if (requeues.length) plan.requeueAfterMs = Math.min(...requeues);
    return plan;
  }
}
