/**
 * The controller against a real kube-apiserver and kube-controller-manager (garbage collection is real). There is no
 * External Secrets Operator here: the test plays its part, creating the Secret an ExternalSecret names and marking
 * the ExternalSecret Ready, exactly as ESO would.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { LLMRoute as LLMRouteSchema, type LLMRoute } from '../../src/api/schema.js';
import { startController, type RunningController } from '../../src/controller/controller.js';
import { KubeClient } from '../../src/controller/kube-client.js';
import { OWNED_KINDS, resourceByKind, resourceOf, resourcePath } from '../../src/controller/resources.js';
import type { LLMRouteStatus } from '../../src/api/schema.js';
import { renderEnvironment, type KubernetesObject } from '../../src/render/render.js';
import { createLogger } from '../../src/log.js';
import { createNamespace, kubeConfig, kubectlOk, restartApiServer, waitFor } from '../k8s/cluster.js';

const SECRET = 'sk-test-not-a-real-key-0123456789';
let client: KubeClient;
let controller: RunningController;
let namespace: string;
const logs: string[] = [];

type LiveRoute = { metadata: { name: string; namespace: string; uid: string; generation: number }; spec: unknown; status?: LLMRouteStatus };

const routePath = (name = 'support-bot') => resourcePath(resourceOf('llmroute.dev/v1alpha1', 'LLMRoute'), namespace, name);
const getRoute = (name?: string) => client.get<LiveRoute>(routePath(name));
const condition = (route: LiveRoute, type: string) => route.status?.conditions?.find((c) => c.type === type);

/** The example, moved into this test's namespace. */
interface ExampleDoc {
  metadata: { namespace?: string };
  spec: { retry?: object; environments: { name: string; rotateEvery?: string }[] };
}

function example(edit: (doc: ExampleDoc) => void = () => {}): string {
  const doc = parse(readFileSync('examples/support-bot.yaml', 'utf8'));
  doc.metadata.namespace = namespace;
  edit(doc);
  return stringify(doc);
}

const apply = (yaml: string) => kubectlOk(['apply', '--server-side', '--field-manager=test-user', '-f', '-'], { input: yaml });

async function createSecret(name: string, data: Record<string, string>): Promise<void> {
  await kubectlOk(['apply', '--server-side', '--field-manager=test-user', '-f', '-'], {
    input: stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, stringData: data }),
  });
}

/** Plays External Secrets Operator for every ExternalSecret the controller created: the Secret, then Ready. */
async function syncExternalSecrets(): Promise<number> {
  const type = resourceByKind('ExternalSecret');
  const { items } = await client.list<{ metadata: { name: string }; spec: { target: { name: string }; data: { secretKey: string }[] } }>(resourcePath(type, namespace));
  for (const es of items) {
    await createSecret(es.spec.target.name, { [es.spec.data[0]!.secretKey]: SECRET });
    await client.mergePatch(resourcePath(type, namespace, es.metadata.name, 'status'), {
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'SecretSynced', message: 'secret synced', lastTransitionTime: new Date().toISOString() }] },
    });
  }
  return items.length;
}

/**
 * Every field the renderer set is on the live object with the same value (the server adds defaults around them).
 * A rendered `false` or empty map may be absent: the API server's Go types omit them (`omitempty`).
 */
function expectContains(live: unknown, rendered: unknown, path = ''): void {
  const empty = rendered === false || (rendered !== null && typeof rendered === 'object' && !Array.isArray(rendered) && Object.keys(rendered).length === 0);
  if (empty && live === undefined) return;
  if (Array.isArray(rendered)) {
    expect(Array.isArray(live)).toBe(true);
    expect((live as unknown[]).length).toBe(rendered.length);
    rendered.forEach((item, i) => expectContains((live as unknown[])[i], item, `${path}[${i}]`));
  } else if (rendered && typeof rendered === 'object') {
    expect({ path, type: typeof live }).toEqual({ path, type: 'object' });
    for (const [key, value] of Object.entries(rendered)) expectContains((live as Record<string, unknown>)[key], value, `${path}.${key}`);
  } else {
    expect({ path, value: live }).toEqual({ path, value: rendered });
  }
}

async function liveOwned(): Promise<string[]> {
  const names: string[] = [];
  for (const kind of OWNED_KINDS) {
    const { items } = await client.list<{ metadata: { name: string } }>(resourcePath(resourceByKind(kind), namespace), 'llmroute.dev/route=support-bot');
    names.push(...items.map((i) => `${kind}/${i.metadata.name}`));
  }
  return names.sort();
}

async function rendered(environment: string): Promise<KubernetesObject[]> {
  const live = await getRoute();
  const route: LLMRoute = LLMRouteSchema.parse({ apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: 'support-bot', namespace }, spec: live.spec });
  const percents = Object.fromEntries((live.status?.environments?.find((e) => e.name === environment)?.flags ?? []).map((f) => [f.name, f.percent]));
  return renderEnvironment({ route, environment, namespace, flagPercents: percents, owner: { apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', name: 'support-bot', uid: live.metadata.uid } }).objects;
}

const configMap = (environment: string) => client.get<{ data: Record<string, string>; metadata: { annotations: Record<string, string> } }>(resourcePath(resourceByKind('ConfigMap'), namespace, `support-bot-${environment}`));

beforeAll(async () => {
  const kc = kubeConfig();
  client = await KubeClient.create(kc);
  namespace = await createNamespace('ctrl');
  controller = await startController({
    kc,
    namespaces: [namespace],
    workers: 2,
    resyncMs: 30_000,
    metricsPort: 0,
    healthPort: 0,
    log: createLogger({ level: 'debug', write: (line) => void logs.push(line) }),
  });
}, 60_000);

afterAll(async () => {
  await controller?.stop();
  client?.close();
});

describe('llmroute controller on a real API server', () => {
  it('holds an environment whose keys are missing: ExternalSecrets only, no gateway, a status that names the key', async () => {
    await apply(example());
    const route = await waitFor(async () => {
      const r = await getRoute();
      return condition(r, 'KeysResolved')?.status === 'False' && r.status?.observedGeneration === r.metadata.generation ? r : undefined;
    }, { message: 'KeysResolved=False' });
    expect(condition(route, 'Ready')).toMatchObject({ status: 'False', reason: 'ExternalSecretNotReady' });
    expect(condition(route, 'KeysResolved')!.message).toContain('provider "openai" key source 0: ExternalSecret "support-bot-staging-openai-key-0" is not ready');
    expect(condition(route, 'KeysResolved')!.message).toContain('Secret "azure-openai-staging" key "apiKey" is missing');
    const owned = await liveOwned();
    expect(owned.filter((o) => !o.startsWith('ExternalSecret/'))).toEqual([]);
    expect(owned).toHaveLength(6);
  });

  it('rolls out once the keys appear, without anyone touching the route, and applies exactly what synth renders', async () => {
    await createSecret('azure-openai-staging', { apiKey: SECRET });
    await createSecret('support-bot-clients', { web: 'client-token' });
    expect(await syncExternalSecrets()).toBe(6);
    const route = await waitFor(async () => {
      const r = await getRoute();
      return condition(r, 'Ready')?.status === 'True' && r.status?.observedGeneration === r.metadata.generation ? r : undefined;
    }, { timeoutMs: 60_000, message: 'Ready=True' });
    expect(condition(route, 'KeysResolved')).toMatchObject({ status: 'True', observedGeneration: route.metadata.generation });
    for (const environment of ['staging', 'production']) {
      const objects = await rendered(environment);
      for (const object of objects) {
        const live = await client.get(resourcePath(resourceOf(object.apiVersion, object.kind), namespace, object.metadata.name));
        expectContains(live, object);
      }
      const status = route.status!.environments!.find((e) => e.name === environment)!;
      expect(status.configHash).toBe((await configMap(environment)).metadata.annotations['llmroute.dev/config-hash']);
      for (const key of status.keys ?? []) expect(key).toMatchObject({ ready: true, fingerprint: expect.stringMatching(/^sha256:[0-9a-f]{12}$/) });
    }
    const expected = [...(await rendered('staging')), ...(await rendered('production'))].map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(await liveOwned()).toEqual(expected);
    // Secrets never leave their lane: not in status, not in ConfigMaps, not in logs.
    expect(JSON.stringify(route.status)).not.toContain(SECRET);
    expect(JSON.stringify(await configMap('production'))).not.toContain(SECRET);
    expect(logs.join('')).not.toContain(SECRET);
  }, 90_000);

  it('applies nothing again in a pass over a route whose rendering did not change', async () => {
    const mark = logs.length;
    await kubectlOk(['annotate', '--overwrite', 'llmroute', 'support-bot', '-n', namespace, 'test.llmroute.dev/touched=1']);
    const passed = () => logs.slice(mark).some((line) => line.includes('"msg":"reconciled"') && line.includes(`"route":"${namespace}/support-bot"`));
    await waitFor(passed, { message: 'a pass after the annotation' });
    expect(logs.slice(mark).filter((line) => line.includes('"msg":"applied"'))).toEqual([]);
  });

  it('puts back what someone removed from an owned object, though only its metadata is cached', async () => {
    const before = await configMap('production');
    await client.request('PATCH', resourcePath(resourceByKind('ConfigMap'), namespace, 'support-bot-production'), {
      body: { data: { 'gateway.json': null } },
      contentType: 'application/merge-patch+json',
      query: { fieldManager: 'test-user' },
    });
    await waitFor(async () => (await configMap('production')).data['gateway.json'] === before.data['gateway.json'], { message: 'gateway.json put back' });
    expect(logs.some((line) => line.includes('"object":"ConfigMap/support-bot-production","reason":"Changed"'))).toBe(true);
  });

  it('re-creates an owned object someone deleted', async () => {
    const path = resourcePath(resourceByKind('Service'), namespace, 'support-bot-staging');
    const { metadata } = await client.get<{ metadata: { uid: string } }>(path);
    await client.delete(path);
    const recreated = await waitFor(async () => (await client.get<{ metadata: { uid: string } }>(path).catch(() => undefined))?.metadata, { message: 'the Service re-created' });
    expect(recreated.uid).not.toBe(metadata.uid);
  });

  it('an emptied key holds that environment at its last good config while the other rolls forward', async () => {
    const before = await configMap('staging');
    await createSecret('azure-openai-staging', { apiKey: '' });
    await apply(example((doc) => (doc.spec.retry = { maxAttempts: 2 })));
    const route = await waitFor(async () => {
      const r = await getRoute();
      return condition(r, 'KeysResolved')?.status === 'False' && r.status?.observedGeneration === r.metadata.generation ? r : undefined;
    }, { message: 'KeysResolved=False after emptying the key' });
    expect(condition(route, 'Ready')).toMatchObject({ status: 'False', reason: 'KeyEmpty' });
    expect(condition(route, 'KeysResolved')!.message).toContain('environment "staging": provider "azure" key source 0: Secret "azure-openai-staging" key "apiKey" is empty');
    await waitFor(async () => JSON.parse((await configMap('production')).data['gateway.json']!).retry.maxAttempts === 2, { message: 'production rolled forward' });
    expect((await configMap('staging')).data).toEqual(before.data);

    await createSecret('azure-openai-staging', { apiKey: SECRET });
    await waitFor(async () => condition(await getRoute(), 'Ready')?.status === 'True', { message: 'Ready again once the key is back' });
    expect(JSON.parse((await configMap('staging')).data['gateway.json']!).retry.maxAttempts).toBe(2);
  }, 60_000);

  it('reconciles through an API server restart', async () => {
    await restartApiServer();
    await apply(example((doc) => (doc.spec.retry = { maxAttempts: 4 })));
    await waitFor(async () => {
      const r = await getRoute();
      return r.status?.observedGeneration === r.metadata.generation && condition(r, 'Ready')?.status === 'True' && JSON.parse((await configMap('production')).data['gateway.json']!).retry.maxAttempts === 4;
    }, { timeoutMs: 90_000, message: 'reconciled after the API server restart' });
  }, 180_000);

  it('asks External Secrets Operator to refresh keys on the rotateEvery schedule', async () => {
    await apply(example((doc) => {
      doc.spec.retry = { maxAttempts: 4 };
      doc.spec.environments[1]!.rotateEvery = '1h';
    }));
    const type = resourceByKind('ExternalSecret');
    const annotated = await waitFor(async () => {
      const es = await client.get<{ metadata: { annotations?: Record<string, string> } }>(resourcePath(type, namespace, 'support-bot-production-openai-key-1'));
      return es.metadata.annotations?.['force-sync'];
    }, { message: 'force-sync annotation' });
    expect(Date.parse(annotated)).toBeGreaterThan(Date.now() - 60_000);
    // Staging has no schedule: its ExternalSecrets are left alone.
    const staging = await client.get<{ metadata: { annotations?: Record<string, string> } }>(resourcePath(type, namespace, 'support-bot-staging-openai-key-0'));
    expect(staging.metadata.annotations?.['force-sync']).toBeUndefined();
  }, 60_000);

  it('prunes the objects of a removed environment', async () => {
    const production = (await rendered('production')).map((o) => `${o.kind}/${o.metadata.name}`);
    await apply(example((doc) => (doc.spec.environments = doc.spec.environments.filter((e) => e.name === 'staging'))));
    await waitFor(async () => (await liveOwned()).every((o) => !production.includes(o)), { message: 'production objects pruned' });
    expect(await liveOwned()).toEqual((await rendered('staging')).map((o) => `${o.kind}/${o.metadata.name}`).sort());
  }, 60_000);

  it('reports a spec the API server accepted but llmroute cannot serve, sets every condition, and applies nothing', async () => {
    // Map keys are not checked by the CRD's schema, so this model name reaches the controller.
    const doc = parse(example());
    doc.metadata.name = 'invalid-prices';
    doc.spec.prices = { 'not a model name!': { input: 1, output: 2 } };
    await apply(stringify(doc));
    const route = await waitFor(async () => {
      const r = await getRoute('invalid-prices');
      return r.status?.observedGeneration === r.metadata.generation ? r : undefined;
    }, { message: 'status of the invalid route' });
    expect(condition(route, 'ConfigValid')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(condition(route, 'ConfigValid')!.message).toContain('spec.prices');
    expect(condition(route, 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(route.status!.conditions!.map((c) => c.type).sort()).toEqual(['Available', 'BudgetExceeded', 'ConfigValid', 'Degraded', 'KeysResolved', 'Progressing', 'Ready']);
    const { items } = await client.list(resourcePath(resourceByKind('ExternalSecret'), namespace), 'llmroute.dev/route=invalid-prices');
    expect(items).toEqual([]);
    await kubectlOk(['delete', 'llmroute', 'invalid-prices', '-n', namespace]);
  }, 60_000);

  it('deleting the route garbage-collects everything it owned', async () => {
    await kubectlOk(['delete', 'llmroute', 'support-bot', '-n', namespace, '--wait=true']);
    await waitFor(async () => (await liveOwned()).length === 0, { timeoutMs: 60_000, message: 'owned objects collected' });
    await expect(getRoute()).rejects.toMatchObject({ status: 404 });
  }, 90_000);
});
