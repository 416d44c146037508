/**
 * Key resolution, pure: from what the cluster holds for each key source of an environment to key statuses and one
 * verdict with a reason and a message. The message names route, environment, provider and the Secret and key, so the
 * person reading `kubectl describe llmr` knows what to create; it never contains key material.
 */
import { fingerprint } from '../api/names.js';
import type { KeyMount } from '../api/mounts.js';
import type { LLMRouteStatus } from '../api/schema.js';

export type KeyStatus = NonNullable<NonNullable<LLMRouteStatus['environments']>[number]['keys']>[number];

/** What the controller read for one key source. `value` is the decoded value under the key, if any. */
export interface ObservedKey {
  secret: { exists: boolean; value?: string };
  /** Only for externalSecret sources. */
  externalSecret?: { exists: boolean; ready?: { status: string; reason?: string; message?: string }; annotations?: Record<string, string> };
}

export interface KeyVerdict {
  resolved: boolean;
  reason: 'KeysResolved' | 'KeyMissing' | 'KeyEmpty' | 'ExternalSecretNotReady';
  message: string;
  keys: KeyStatus[];
}

function problem(mount: KeyMount, observed: ObservedKey): { reason: KeyVerdict['reason']; text: string } | undefined {
  const where = `Secret "${mount.secretName}" key "${mount.secretKey}"`;
  if (mount.externalSecret) {
    const es = observed.externalSecret;
    if (!es?.exists) return { reason: 'ExternalSecretNotReady', text: `ExternalSecret "${mount.secretName}" does not exist yet` };
    if (es.ready?.status !== 'True') {
      const detail = es.ready ? `${es.ready.reason ?? 'NotReady'}${es.ready.message ? `: ${es.ready.message}` : ''}` : 'no Ready condition yet (is External Secrets Operator running?)';
      return { reason: 'ExternalSecretNotReady', text: `ExternalSecret "${mount.secretName}" is not ready (${detail})` };
    }
  }
  if (!observed.secret.exists) return { reason: 'KeyMissing', text: `${where} is missing: the Secret does not exist` };
  if (observed.secret.value === undefined) return { reason: 'KeyMissing', text: `${where} is missing: the Secret has no such key` };
  if (observed.secret.value.trim() === '') return { reason: 'KeyEmpty', text: `${where} is empty` };
  return undefined;
}

/**
 * Resolves every key source of one environment. `previous` carries fingerprints and rotation times across
 * reconciles: a changed fingerprint is a rotation, stamped `now`.
 */
export function resolveKeys(
  route: { name: string; namespace?: string },
  environment: string,
  mounts: readonly KeyMount[],
  observe: (mount: KeyMount) => ObservedKey,
  previous: readonly KeyStatus[] | undefined,
  now: string,
): KeyVerdict {
  const problems: { mount: KeyMount; reason: KeyVerdict['reason']; text: string }[] = [];
  const keys = mounts.map((mount): KeyStatus => {
    const observed = observe(mount);
    const found = problem(mount, observed);
    const before = previous?.find((k) => k.provider === mount.provider && k.source === mount.index);
    if (found) {
      problems.push({ mount, ...found });
      return { provider: mount.provider, source: mount.index, secretName: mount.secretName, ready: false, message: found.text, ...(before?.fingerprint ? { fingerprint: before.fingerprint, rotatedAt: before.rotatedAt } : {}) };
    }
    const print = fingerprint(observed.secret.value as string);
    const rotatedAt = before?.fingerprint === print && before.rotatedAt ? before.rotatedAt : now;
    return { provider: mount.provider, source: mount.index, secretName: mount.secretName, ready: true, fingerprint: print, rotatedAt };
  });
  if (problems.length === 0) {
    return { resolved: true, reason: 'KeysResolved', message: `all ${mounts.length} key${mounts.length === 1 ? '' : 's'} of environment "${environment}" are present`, keys };
  }
  const first = problems[0] as (typeof problems)[number];
  const id = `${route.namespace ? `${route.namespace}/` : ''}${route.name}`;
  const lines = problems.map((p) => `provider "${p.mount.provider}" key source ${p.mount.index}: ${p.text}`);
  return {
    resolved: false,
    reason: first.reason,
    message: `LLMRoute ${id}, environment "${environment}": ${lines.join('; ')}. The last good config keeps serving; the environment rolls out when the key appears.`,
    keys,
  };
}
