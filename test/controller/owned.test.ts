import { describe, expect, it } from '@jest/globals';
import { AppliedObjects, OwnedIndex, UNSEEN_GRACE_MS, decideApply, renderedHash, stripOwned, type AppliedRecord } from '../../src/controller/owned.js';

const NOW = 1_800_000_000_000;

/** A Deployment as the API server answers it: kind first, managedFields, status, the Deployment controller's annotation. */
function deployment(edit: { replicas?: number; status?: object; annotations?: Record<string, string>; resourceVersion?: string } = {}) {
  return {
    kind: 'Deployment',
    apiVersion: 'apps/v1',
    metadata: {
      name: 'bot-production',
      namespace: 'ai',
      uid: 'uid-1',
      resourceVersion: edit.resourceVersion ?? '100',
      generation: 3,
      creationTimestamp: '2026-11-22T10:00:00Z',
      labels: { 'llmroute.dev/route': 'bot', 'llmroute.dev/environment': 'production' },
      annotations: edit.annotations ?? { 'llmroute.dev/config-hash': 'abc' },
      ownerReferences: [{ apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', name: 'bot', uid: 'route-uid', controller: true }],
      managedFields: [{ manager: 'llmroute', operation: 'Apply', fieldsV1: { 'f:spec': {} } }],
    },
    spec: { replicas: edit.replicas ?? 2, template: { spec: { containers: [{ name: 'gateway', image: 'llmroute:1' }] } } },
    status: edit.status ?? { observedGeneration: 3, replicas: 2, availableReplicas: 2 },
  };
}

/** A ConfigMap as a metadata-only watch or apply answer has it: PartialObjectMetadata, its apiVersion and kind set by the caller. */
const configMapMetadata = (resourceVersion: string) => ({
  kind: 'ConfigMap',
  apiVersion: 'v1',
  metadata: { name: 'bot-production', namespace: 'ai', resourceVersion, labels: { 'llmroute.dev/route': 'bot' }, annotations: { big: 'x'.repeat(1000) }, managedFields: [{ manager: 'llmroute' }] },
});

const record = (version: string, at = NOW): AppliedRecord => ({ renderedHash: 'r1', version, resourceVersion: '100', at });

describe('stripOwned', () => {
  it('keeps what the reconciler reads of a Deployment and versions it by content, not by status', () => {
    const stripped = stripOwned(deployment());
    expect(stripped).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'bot-production',
        namespace: 'ai',
        resourceVersion: '100',
        generation: 3,
        labels: { 'llmroute.dev/route': 'bot', 'llmroute.dev/environment': 'production' },
        ownerReferences: [{ apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', name: 'bot', uid: 'route-uid', controller: true }],
      },
      spec: { replicas: 2 },
      status: { observedGeneration: 3, replicas: 2, availableReplicas: 2 },
      version: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    // A status update, a new resourceVersion and the Deployment controller's revision annotation are not changes to
    // what was applied; a different replica count is.
    const moved = stripOwned(deployment({ resourceVersion: '101', status: { observedGeneration: 3, replicas: 2, availableReplicas: 1 }, annotations: { 'llmroute.dev/config-hash': 'abc', 'deployment.kubernetes.io/revision': '2' } }));
    expect(moved.version).toBe(stripped.version);
    expect(stripOwned(deployment({ replicas: 3 })).version).not.toBe(stripped.version);
    expect(stripOwned(deployment({ annotations: { 'llmroute.dev/config-hash': 'def' } })).version).not.toBe(stripped.version);
  });

  it('gives the same version whether apiVersion and kind came first (an answer) or were set last (a list item)', () => {
    const { kind, apiVersion, ...listItem } = deployment();
    expect(stripOwned({ ...listItem, apiVersion, kind }).version).toBe(stripOwned(deployment()).version);
  });

  it('versions a metadata-only kind by resourceVersion and keeps none of its annotations', () => {
    const stripped = stripOwned(configMapMetadata('7'));
    expect(stripped).toEqual({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bot-production', namespace: 'ai', resourceVersion: '7', labels: { 'llmroute.dev/route': 'bot' } }, version: '7' });
  });

  it("keeps an ExternalSecret's annotations (force-sync) and status (Ready)", () => {
    const stripped = stripOwned({ apiVersion: 'external-secrets.io/v1', kind: 'ExternalSecret', metadata: { name: 'k', resourceVersion: '1', annotations: { 'force-sync': '2026-11-22T10:00:00Z' } }, spec: { target: { name: 'k' } }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    expect(stripped.metadata.annotations).toEqual({ 'force-sync': '2026-11-22T10:00:00Z' });
    expect(stripped.status).toEqual({ conditions: [{ type: 'Ready', status: 'True' }] });
    expect(stripped).not.toHaveProperty('spec');
  });
});

describe('decideApply', () => {
  const live = stripOwned(deployment());

  it('applies what this term has not applied, and what renders differently since', () => {
    expect(decideApply('r1', undefined, live, NOW)).toMatchObject({ apply: true, reason: 'NotApplied' });
    expect(decideApply('r2', record(live.version), live, NOW)).toMatchObject({ apply: true, reason: 'RenderChanged' });
  });

  it('leaves alone an object as it was applied, whatever its status did since', () => {
    const moved = stripOwned(deployment({ resourceVersion: '205', status: { availableReplicas: 0 } }));
    expect(decideApply('r1', record(live.version), moved, NOW)).toEqual({ apply: false, reason: 'UpToDate', message: 'as applied' });
  });

  it('applies again an object someone changed', () => {
    expect(decideApply('r1', record(live.version), stripOwned(deployment({ replicas: 5 })), NOW)).toMatchObject({ apply: true, reason: 'Changed' });
    expect(decideApply('r1', record('7'), stripOwned(configMapMetadata('8')), NOW)).toMatchObject({ apply: true, reason: 'Changed' });
  });

  it('waits for the watch to deliver a fresh apply, but not for ever', () => {
    expect(decideApply('r1', record(live.version, NOW - 1000), undefined, NOW)).toMatchObject({ apply: false, reason: 'UpToDate' });
    expect(decideApply('r1', record(live.version, NOW - UNSEEN_GRACE_MS), undefined, NOW)).toMatchObject({ apply: true, reason: 'Missing' });
  });
});

describe('renderedHash', () => {
  it('tells rendered objects apart by content', () => {
    expect(renderedHash({ a: 1, b: [1, 2] })).toBe(renderedHash({ a: 1, b: [1, 2] }));
    expect(renderedHash({ a: 1, b: [1, 2] })).not.toBe(renderedHash({ a: 1, b: [2, 1] }));
  });
});

describe('AppliedObjects', () => {
  it('recognises our own write by resourceVersion, forgets deleted objects and whole routes', () => {
    const applied = new AppliedObjects();
    applied.set('ai/bot', 'ConfigMap/bot-production', record('7'));
    applied.setRendering('ai/bot', 'production', { inputs: 'i', configHash: 'c', objects: [] });
    expect(applied.isOwnWrite('ai/bot', 'ConfigMap/bot-production', '100')).toBe(true);
    expect(applied.isOwnWrite('ai/bot', 'ConfigMap/bot-production', '101')).toBe(false);
    expect(applied.isOwnWrite('ai/bot', 'ConfigMap/bot-production', undefined)).toBe(false);
    applied.forget('ai/bot', 'ConfigMap/bot-production');
    expect(applied.get('ai/bot', 'ConfigMap/bot-production')).toBeUndefined();
    expect(applied.rendering('ai/bot', 'production')).toMatchObject({ inputs: 'i' });
    applied.forgetRoute('ai/bot');
    expect(applied.rendering('ai/bot', 'production')).toBeUndefined();
  });
});

describe('OwnedIndex', () => {
  const object = (name: string, route: string) => stripOwned({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ai', resourceVersion: '1', labels: { 'llmroute.dev/route': route } } });

  it("lists a route's objects, follows a relabelled object to its new route, and drops deleted ones", () => {
    const index = new OwnedIndex();
    index.update('add', object('bot-staging', 'bot'));
    index.update('add', object('bot-production', 'bot'));
    index.update('add', object('other-staging', 'other'));
    expect(index.ofRoute('ai', 'bot').map((o) => o.metadata.name).sort()).toEqual(['bot-production', 'bot-staging']);
    index.update('update', object('bot-staging', 'other'));
    expect(index.ofRoute('ai', 'bot').map((o) => o.metadata.name)).toEqual(['bot-production']);
    expect(index.get('Service', 'ai', 'bot-staging')?.metadata.labels).toEqual({ 'llmroute.dev/route': 'other' });
    index.update('delete', object('bot-production', 'bot'));
    expect(index.ofRoute('ai', 'bot')).toEqual([]);
    expect(index.get('Service', 'ai', 'bot-production')).toBeUndefined();
    expect(index.ofRoute('elsewhere', 'bot')).toEqual([]);
  });
});
