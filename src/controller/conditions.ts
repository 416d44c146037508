/**
 * Status conditions per Kubernetes API conventions: a list keyed by type, `lastTransitionTime` moving only when the
 * status does, `observedGeneration` on each. Pure functions, so what the controller writes is decided in one place.
 */
import type { Condition } from '../api/schema.js';

export type ConditionType = 'Ready' | 'ConfigValid' | 'KeysResolved' | 'Progressing' | 'Degraded' | 'BudgetExceeded' | 'Available';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface ConditionInput {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** The conditions every LLMRoute carries from its first reconcile on, in this order. */
export const CONDITION_TYPES: readonly ConditionType[] = ['Ready', 'ConfigValid', 'KeysResolved', 'Available', 'Progressing', 'Degraded', 'BudgetExceeded'];

/** Kubernetes caps condition messages at 32 KiB; ours are cut well before, with a marker. */
const MAX_MESSAGE = 4096;
const clip = (message: string) => (message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 14)}… (truncated)` : message);

/** Merges new conditions into the existing list; a condition whose status did not change keeps its transition time. */
export function mergeConditions(existing: readonly Condition[] | undefined, updates: readonly ConditionInput[], generation: number, now: string): Condition[] {
  const byType = new Map((existing ?? []).map((c) => [c.type, c]));
  for (const update of updates) {
    const before = byType.get(update.type);
    byType.set(update.type, {
      type: update.type,
      status: update.status,
      observedGeneration: generation,
      lastTransitionTime: before && before.status === update.status ? before.lastTransitionTime : now,
      reason: update.reason,
      message: clip(update.message),
    });
  }
  const order = (type: string) => {
    const index = CONDITION_TYPES.indexOf(type as ConditionType);
    return index === -1 ? CONDITION_TYPES.length : index;
  };
  return [...byType.values()].sort((a, b) => order(a.type) - order(b.type) || a.type.localeCompare(b.type));
}

/**
 * `Ready` summarises: the current spec is valid, its keys resolved, and every environment's objects applied with no
 * degradation. Gateway pods serving traffic is `Available`, reported apart, as a Deployment reports it apart from
 * progress: an LLMRoute whose pods crash is applied but not available.
 */
export function readyCondition(conditions: readonly ConditionInput[]): ConditionInput {
  const find = (type: ConditionType) => conditions.find((c) => c.type === type);
  for (const [type, healthy] of [
    ['ConfigValid', 'True'],
    ['KeysResolved', 'True'],
    ['Degraded', 'False'],
  ] as const) {
    const condition = find(type);
    if (condition && condition.status !== healthy) {
      return { type: 'Ready', status: condition.status === 'Unknown' ? 'Unknown' : 'False', reason: condition.reason, message: condition.message };
    }
  }
  return { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'every environment serves the current spec' };
}
