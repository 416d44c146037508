import { describe, expect, it } from '@jest/globals';
import { mergeConditions, readyCondition, type ConditionInput } from '../../src/controller/conditions.js';

const T0 = '2026-11-22T09:00:00.000Z';
const T1 = '2026-11-22T10:00:00.000Z';

describe('mergeConditions', () => {
  it('moves lastTransitionTime only when the status changes, and stamps observedGeneration', () => {
    const first = mergeConditions(undefined, [{ type: 'KeysResolved', status: 'False', reason: 'KeyMissing', message: 'a' }], 1, T0);
    const same = mergeConditions(first, [{ type: 'KeysResolved', status: 'False', reason: 'KeyEmpty', message: 'b' }], 2, T1);
    expect(same[0]).toEqual({ type: 'KeysResolved', status: 'False', reason: 'KeyEmpty', message: 'b', observedGeneration: 2, lastTransitionTime: T0 });
    const changed = mergeConditions(same, [{ type: 'KeysResolved', status: 'True', reason: 'KeysResolved', message: 'c' }], 2, T1);
    expect(changed[0]!.lastTransitionTime).toBe(T1);
  });

  it('keeps a fixed order with Ready first', () => {
    const merged = mergeConditions(undefined, [
      { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' },
      { type: 'Ready', status: 'True', reason: 'Reconciled', message: '' },
      { type: 'ConfigValid', status: 'True', reason: 'Valid', message: '' },
    ], 1, T0);
    expect(merged.map((c) => c.type)).toEqual(['Ready', 'ConfigValid', 'Degraded']);
  });

  it('truncates very long messages, marking the cut', () => {
    const [condition] = mergeConditions(undefined, [{ type: 'Ready', status: 'False', reason: 'X', message: 'x'.repeat(10_000) }], 1, T0);
    expect(condition!.message.length).toBeLessThanOrEqual(4096);
    expect(condition!.message.endsWith('(truncated)')).toBe(true);
  });
});

describe('readyCondition', () => {
  const ok: ConditionInput[] = [
    { type: 'ConfigValid', status: 'True', reason: 'Valid', message: '' },
    { type: 'KeysResolved', status: 'True', reason: 'KeysResolved', message: '' },
    { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' },
    { type: 'Available', status: 'False', reason: 'GatewayUnavailable', message: 'pods pending' },
  ];

  it('is True when valid, keyed and not degraded, whatever pod availability says', () => {
    expect(readyCondition(ok)).toMatchObject({ status: 'True', reason: 'Reconciled' });
  });

  it.each([
    ['ConfigValid', 'False', 'InvalidSpec'],
    ['KeysResolved', 'False', 'KeyMissing'],
    ['Degraded', 'True', 'RolloutAborted'],
  ] as const)('takes %s=%s with its reason and message', (type, status, reason) => {
    const conditions = ok.map((c) => (c.type === type ? { ...c, status, reason, message: `because ${reason}` } : c));
    expect(readyCondition(conditions)).toEqual({ type: 'Ready', status: 'False', reason, message: `because ${reason}` });
  });
});
