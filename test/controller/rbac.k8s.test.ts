/**
 * The chart's RBAC is enough for the controller and nothing more. The chart is rendered with `helm template` (in
 * `watchNamespaces` mode and in the default cluster-wide mode), only its ServiceAccount, Roles, RoleBindings,
 * ClusterRole and ClusterRoleBinding are applied, and the controller runs in-process under the ServiceAccount's
 * identity (a client certificate for `system:serviceaccount:<ns>:<name>`, which is what RBAC matches ServiceAccount
 * subjects by), with leader election on, through the support-bot example's whole life: keys missing, External
 * Secrets Operator played by the test, Ready, a change, a scheduled key refresh, an environment pruned, the route
 * deleted. Any 403 shows up as a failed wait and as a `forbidden` line in the controller's log, which is asserted
 * empty. "Nothing more" is checked with SelfSubjectRulesReviews (every rule the identity holds, per namespace,
 * against the chart README's RBAC table) and with `kubectl auth can-i` for the grants that matter most.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { LLMRoute as LLMRouteSchema, type LLMRoute, type LLMRouteStatus } from '../../src/api/schema.js';
import { startController, type RunningController } from '../../src/controller/controller.js';
import { KubeClient } from '../../src/controller/kube-client.js';
import { OWNED_KINDS, resourceByKind, resourceOf, resourcePath } from '../../src/controller/resources.js';
import { createLogger } from '../../src/log.js';
import { renderEnvironment } from '../../src/render/render.js';
import { createNamespace, helm, kubeConfig, kubeconfigFor, kubectl, kubectlOk, waitFor } from '../k8s/cluster.js';
import { freePort } from '../support/ports.js';

jest.setTimeout(120_000);

const SECRET = 'sk-test-not-a-real-key-0123456789';
const RBAC_KINDS = ['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'];
const TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

/** The chart README's RBAC table, row by row: what the identity must hold where it reconciles, and nothing else. */
const RECONCILE_RULES: Array<[group: string, resource: string, verbs: string[]]> = [
  ['llmroute.dev', 'llmroutes', ['get', 'list', 'watch']],
  ['llmroute.dev', 'llmroutes/status', ['patch']],
  ['llmroute.dev', 'llmroutes/finalizers', ['update']],
  ...['configmaps', 'services', 'serviceaccounts'].map((r): [string, string, string[]] => ['', r, ['get', 'list', 'watch', 'create', 'patch', 'delete']]),
  ['apps', 'deployments', ['get', 'list', 'watch', 'create', 'patch', 'delete']],
  ['policy', 'poddisruptionbudgets', ['get', 'list', 'watch', 'create', 'patch', 'delete']],
  ['networking.k8s.io', 'networkpolicies', ['get', 'list', 'watch', 'create', 'patch', 'delete']],
  ['external-secrets.io', 'externalsecrets', ['get', 'list', 'watch', 'create', 'patch', 'delete']],
  ['monitoring.coreos.com', 'servicemonitors', ['get', 'list', 'watch', 'create', 'patch', 'delete']],
  ['monitoring.coreos.com', 'prometheusrules', ['get', 'list', 'watch', 'create', 'patch', 'delete']],
  ['', 'secrets', ['get']],
  ['', 'events', ['create']],
];
const LEASE_RULES: Array<[string, string, string[]]> = [['coordination.k8s.io', 'leases', ['get', 'create', 'update']]];
const flatten = (rules: Array<[string, string, string[]]>) => rules.flatMap(([group, resource, verbs]) => verbs.map((verb) => `${group}/${resource}:${verb}`)).sort();

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
  rules?: unknown[];
}

interface Install {
  release: string;
  releaseNamespace: string;
  serviceAccount: string;
  objects: Manifest[];
  /** Path of a kubeconfig for the ServiceAccount's identity. */
  kubeconfig: string;
}

/** `helm template`, then `kubectl apply` of its RBAC objects only (no Deployment: the controller runs in this process). */
async function installRbac(releaseNamespace: string, values: string[], withhold: Array<[group: string, resource: string, verb: string]> = []): Promise<Install> {
  const release = `rbac${randomBytes(3).toString('hex')}`;
  const rendered = await helm(['template', release, 'charts/llmroute', '--namespace', releaseNamespace, ...values.flatMap((v) => ['--set', v])]);
  if (rendered.code !== 0) throw new Error(`helm template failed:\n${rendered.stderr}`);
  const objects = parseAllDocuments(rendered.stdout)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((o): o is Manifest => o !== null && RBAC_KINDS.includes(o.kind));
  for (const object of objects) {
    for (const rule of (object.rules ?? []) as { apiGroups: string[]; resources: string[]; verbs: string[] }[]) {
      // Only rules of one group and resource are edited: the chart's rules here all are, or hold no withheld verb.
      const withheld = withhold.filter(([group, resource]) => rule.apiGroups.includes(group) && rule.resources.includes(resource)).map(([, , verb]) => verb);
      if (withheld.length === 0) continue;
      if (rule.apiGroups.length !== 1 || rule.resources.length !== 1) throw new Error(`cannot withhold ${withheld.join(', ')} from a rule for several resources: ${JSON.stringify(rule)}`);
      rule.verbs = rule.verbs.filter((verb) => !withheld.includes(verb));
    }
    if (object.rules) object.rules = (object.rules as { verbs: string[] }[]).filter((rule) => rule.verbs.length > 0);
  }
  await kubectlOk(['apply', '--server-side', '--field-manager=helm-template', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
  const serviceAccount = objects.find((o) => o.kind === 'ServiceAccount')!.metadata.name;
  const kubeconfig = await kubeconfigFor(`system:serviceaccount:${releaseNamespace}:${serviceAccount}`, ['system:serviceaccounts', `system:serviceaccounts:${releaseNamespace}`, 'system:authenticated']);
  return { release, releaseNamespace, serviceAccount, objects, kubeconfig };
}


let admin: KubeClient;
const running: RunningController[] = [];

beforeAll(async () => {
  admin = await KubeClient.create(kubeConfig());
});

afterEach(async () => {
  // Whatever happened in the test, no controller outlives it.
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

afterAll(() => admin?.close());

/** The rules an identity holds in a namespace, as `group/resource:verb`, without what every authenticated user holds. */
async function rulesIn(kubeconfig: string, namespace: string): Promise<string[]> {
  const client = await KubeClient.create(kubeConfig(kubeconfig));
  try {
    const review = await client.request<{ status: { resourceRules: { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[] }[]; incomplete: boolean } }>(
      'POST',
      '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews',
      { body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace } } },
    );
    expect(review.status.incomplete).toBe(false);
    const rules = new Set<string>();
    for (const rule of review.status.resourceRules) {
      // system:basic-user: everyone may ask what they may do.
      if (rule.resources?.every((r) => r.startsWith('selfsubject'))) continue;
      expect(rule.resourceNames ?? []).toEqual([]);
      for (const group of rule.apiGroups ?? []) for (const resource of rule.resources ?? []) for (const verb of rule.verbs) rules.add(`${group}/${resource}:${verb}`);
    }
    return [...rules].sort();
  } finally {
    client.close();
  }
}

/** `kubectl auth can-i` as the controller's identity: true for yes, false for no. */
async function can(kubeconfig: string, args: string[]): Promise<boolean> {
  const result = await kubectl(['auth', 'can-i', ...args], { kubeconfig });
  if (result.stdout.trim() !== 'yes' && result.stdout.trim() !== 'no') throw new Error(`kubectl auth can-i ${args.join(' ')}: ${result.stderr}${result.stdout}`);
  return result.stdout.trim() === 'yes';
}

type LiveRoute = { metadata: { name: string; namespace: string; uid: string; generation: number }; spec: unknown; status?: LLMRouteStatus };

/** `lifecycle`, with the controller's complaints in the error when a step times out (a 403 shows up there). */
async function lifecycle(namespace: string, logs: string[]): Promise<void> {
  try {
    await driveLifecycle(namespace, logs);
  } catch (error) {
    const complaints = logs.filter((line) => /forbidden|"level":"(warn|error)"/i.test(line)).slice(-10);
    (error as Error).message += `\ncontroller log (last warnings and errors):\n${complaints.join('') || '(none)'}`;
    throw error;
  }
}

/** The support-bot example's whole life in `namespace`, driven as an admin would. */
async function driveLifecycle(namespace: string, logs: string[]) {
  const routePath = resourcePath(resourceOf('llmroute.dev/v1alpha1', 'LLMRoute'), namespace, 'support-bot');
  const getRoute = () => admin.get<LiveRoute>(routePath);
  const condition = (route: LiveRoute, type: string) => route.status?.conditions?.find((c) => c.type === type);
  const current = async (predicate: (route: LiveRoute) => boolean) => {
    const route = await getRoute();
    return route.status?.observedGeneration === route.metadata.generation && predicate(route) ? route : undefined;
  };
  const example = (edit: (doc: { spec: { retry?: object; environments: { name: string; rotateEvery?: string }[] } }) => void = () => {}) => {
    const doc = parse(readFileSync('examples/support-bot.yaml', 'utf8'));
    doc.metadata.namespace = namespace;
    edit(doc);
    return stringify(doc);
  };
  const apply = (yaml: string) => kubectlOk(['apply', '--server-side', '--field-manager=test-user', '-f', '-'], { input: yaml });
  const createSecret = (name: string, data: Record<string, string>) => apply(stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, stringData: data }));
  const owned = async () => {
    const names: string[] = [];
    for (const kind of OWNED_KINDS) {
      const { items } = await admin.list<{ metadata: { name: string } }>(resourcePath(resourceByKind(kind), namespace), 'llmroute.dev/route=support-bot');
      names.push(...items.map((i) => `${kind}/${i.metadata.name}`));
    }
    return names.sort();
  };
  const rendered = async (environments: string[]) => {
    const live = await getRoute();
    const route: LLMRoute = LLMRouteSchema.parse({ apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: 'support-bot', namespace }, spec: live.spec });
    const owner = { apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', name: 'support-bot', uid: live.metadata.uid };
    return environments.flatMap((environment) => renderEnvironment({ route, environment, namespace, owner }).objects.map((o) => `${o.kind}/${o.metadata.name}`)).sort();
  };
  const gatewayJson = async (environment: string) =>
    JSON.parse((await admin.get<{ data: Record<string, string> }>(resourcePath(resourceByKind('ConfigMap'), namespace, `support-bot-${environment}`))).data['gateway.json']!);

  // Keys missing: only the ExternalSecrets exist, and the status says which keys.
  await apply(example());
  const held = await waitFor(() => current((r) => condition(r, 'KeysResolved')?.status === 'False'), { message: 'KeysResolved=False' });
  expect(condition(held, 'Ready')).toMatchObject({ status: 'False', reason: 'ExternalSecretNotReady' });
  expect((await owned()).every((o) => o.startsWith('ExternalSecret/'))).toBe(true);
  expect(await owned()).toHaveLength(6);

  // External Secrets Operator, played: the Secrets, then Ready on every ExternalSecret the controller created.
  await createSecret('azure-openai-staging', { apiKey: SECRET });
  await createSecret('support-bot-clients', { web: 'client-token' });
  const esType = resourceByKind('ExternalSecret');
  const { items } = await admin.list<{ metadata: { name: string }; spec: { target: { name: string }; data: { secretKey: string }[] } }>(resourcePath(esType, namespace));
  expect(items).toHaveLength(6);
  for (const es of items) {
    await createSecret(es.spec.target.name, { [es.spec.data[0]!.secretKey]: SECRET });
    await admin.mergePatch(resourcePath(esType, namespace, es.metadata.name, 'status'), {
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'SecretSynced', message: 'secret synced', lastTransitionTime: new Date().toISOString() }] },
    });
  }
  await waitFor(() => current((r) => condition(r, 'Ready')?.status === 'True'), { timeoutMs: 60_000, message: 'Ready=True' });
  expect(await owned()).toEqual(await rendered(['staging', 'production']));

  // A change, and a scheduled key refresh (a merge patch of an ExternalSecret's annotations).
  await apply(example((doc) => {
    doc.spec.retry = { maxAttempts: 2 };
    doc.spec.environments[1]!.rotateEvery = '1h';
  }));
  await waitFor(async () => (await current((r) => condition(r, 'Ready')?.status === 'True')) && (await gatewayJson('production')).retry.maxAttempts === 2, { message: 'the change rolled out' });
  await waitFor(async () => (await admin.get<{ metadata: { annotations?: Record<string, string> } }>(resourcePath(esType, namespace, 'support-bot-production-openai-key-1'))).metadata.annotations?.['force-sync'], {
    message: 'force-sync annotation',
  });

  // Prune an environment: its objects are deleted, and an Event says so.
  await apply(example((doc) => {
    doc.spec.retry = { maxAttempts: 2 };
    doc.spec.environments = doc.spec.environments.filter((e) => e.name === 'staging');
  }));
  const staging = await rendered(['staging']);
  await waitFor(async () => JSON.stringify(await owned()) === JSON.stringify(staging), { message: 'production pruned' });
  await waitFor(async () => {
    const { items: events } = await admin.list<{ reason: string; involvedObject: { name: string } }>(resourcePath(resourceByKind('Event'), namespace));
    return events.some((e) => e.reason === 'Pruned' && e.involvedObject.name === 'support-bot');
  }, { message: 'a Pruned event' });
  const ready = await waitFor(() => current((r) => condition(r, 'Ready')?.status === 'True'), { message: 'Ready=True after pruning' });
  expect(ready.status?.environments?.map((e) => e.name)).toEqual(['staging']);

  // Delete: the controller has nothing to do (garbage collection removes what the route owned) and must not fail.
  await kubectlOk(['delete', 'llmroute', 'support-bot', '-n', namespace, '--wait=true']);
  await new Promise((resolve) => setTimeout(resolve, 1000));

  // Only refusals count here: another test file may restart the API server meanwhile, which costs retries, not this.
  expect(logs.filter((line) => /forbidden|\b403\b/i.test(line))).toEqual([]);
  expect(logs.join('')).not.toContain(SECRET);
}

async function startAs(install: Install, namespaces: string[], logs: string[], extra: { healthPort?: number; identity?: string } = {}): Promise<RunningController> {
  const controller = await startController({
    kc: kubeConfig(install.kubeconfig),
    namespaces,
    workers: 2,
    resyncMs: 30_000,
    metricsPort: 0,
    healthPort: extra.healthPort ?? 0,
    leaderElection: { namespace: install.releaseNamespace, name: 'llmroute-controller', identity: extra.identity ?? `${install.release}-0`, ...TIMING },
    log: createLogger({ level: 'info', write: (line) => void logs.push(line) }),
  });
  running.push(controller);
  return controller;
}

async function leaseHolder(namespace: string, name: string): Promise<string | undefined> {
  const lease = await admin.get<{ spec?: { holderIdentity?: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`);
  return lease.spec?.holderIdentity;
}

describe("the chart's RBAC is enough for the controller, and nothing more", () => {
  it('watchNamespaces: a Role per watched namespace runs the whole lifecycle; nothing cluster-wide, nothing elsewhere', async () => {
    const [releaseNamespace, watched, unwatched] = await Promise.all([createNamespace('llmroute-system'), createNamespace('rbac-watched'), createNamespace('rbac-unwatched')]);
    const install = await installRbac(releaseNamespace, [`watchNamespaces={${watched}}`]);
    expect(install.objects.map((o) => `${o.kind} ${o.metadata.namespace ?? '(cluster)'}`).sort()).toEqual(
      [`Role ${releaseNamespace}`, `Role ${watched}`, `RoleBinding ${releaseNamespace}`, `RoleBinding ${watched}`, `ServiceAccount ${releaseNamespace}`].sort(),
    );

    const logs: string[] = [];
    const controller = await startAs(install, [watched], logs);
    await waitFor(() => controller.isLeader(), { message: 'leading' });
    expect(await leaseHolder(releaseNamespace, 'llmroute-controller')).toBe(`${install.release}-0`);
    await lifecycle(watched, logs);

    // Exactly the README's rules where it reconciles, the Lease rule where the Lease is, nothing anywhere else.
    expect(await rulesIn(install.kubeconfig, watched)).toEqual(flatten(RECONCILE_RULES));
    expect(await rulesIn(install.kubeconfig, releaseNamespace)).toEqual(flatten(LEASE_RULES));
    expect(await rulesIn(install.kubeconfig, unwatched)).toEqual([]);

    const k = install.kubeconfig;
    // Secrets: read one by name, never enumerate, stream or write.
    expect(await can(k, ['get', 'secrets', '-n', watched])).toBe(true);
    for (const verb of ['list', 'watch', 'create', 'update', 'patch', 'delete']) expect({ verb, allowed: await can(k, [verb, 'secrets', '-n', watched]) }).toEqual({ verb, allowed: false });
    // Deployments: server-side apply (patch), never update.
    expect(await can(k, ['patch', 'deployments.apps', '-n', watched])).toBe(true);
    expect(await can(k, ['update', 'deployments.apps', '-n', watched])).toBe(false);
    // Routes: never their spec or metadata.
    expect(await can(k, ['update', 'llmroutes.llmroute.dev', '-n', watched])).toBe(false);
    expect(await can(k, ['patch', 'llmroutes.llmroute.dev', '-n', watched])).toBe(false);
    expect(await can(k, ['patch', 'llmroutes.llmroute.dev', '--subresource=status', '-n', watched])).toBe(true);
    // Other namespaces, and anything cluster-wide.
    expect(await can(k, ['list', 'llmroutes.llmroute.dev', '-n', unwatched])).toBe(false);
    expect(await can(k, ['get', 'secrets', '-n', unwatched])).toBe(false);
    expect(await can(k, ['create', 'configmaps', '-n', unwatched])).toBe(false);
    expect(await can(k, ['list', 'llmroutes.llmroute.dev', '--all-namespaces'])).toBe(false);
    expect(await can(k, ['list', 'namespaces'])).toBe(false);
    expect(await can(k, ['get', 'nodes'])).toBe(false);
    expect(await can(k, ['create', 'clusterrolebindings.rbac.authorization.k8s.io'])).toBe(false);
    expect(await can(k, ['create', 'rolebindings.rbac.authorization.k8s.io', '-n', watched])).toBe(false);
    expect(await can(k, ['create', 'pods', '-n', watched])).toBe(false);
    // The Lease: only in the release namespace, never listed or deleted.
    expect(await can(k, ['update', 'leases.coordination.k8s.io', '-n', releaseNamespace])).toBe(true);
    expect(await can(k, ['list', 'leases.coordination.k8s.io', '-n', releaseNamespace])).toBe(false);
    expect(await can(k, ['delete', 'leases.coordination.k8s.io', '-n', releaseNamespace])).toBe(false);
    expect(await can(k, ['get', 'leases.coordination.k8s.io', '-n', watched])).toBe(false);
  });

  it('cluster-wide: the ClusterRole runs the whole lifecycle, lets the informers list and watch every namespace, and holds no more', async () => {
    const [releaseNamespace, namespace] = await Promise.all([createNamespace('llmroute-system'), createNamespace('rbac-cluster')]);
    const install = await installRbac(releaseNamespace, []);
    expect(install.objects.map((o) => `${o.kind} ${o.metadata.namespace ?? '(cluster)'}`).sort()).toEqual(
      ['ClusterRole (cluster)', 'ClusterRoleBinding (cluster)', `Role ${releaseNamespace}`, `RoleBinding ${releaseNamespace}`, `ServiceAccount ${releaseNamespace}`].sort(),
    );

    // Every namespace watched, but never leading: another holder keeps the Lease, so the routes of other test files
    // in this shared cluster are listed and watched, not reconciled. Ready means every informer has synced.
    const now = new Date().toISOString().replace('Z', '000Z');
    await kubectlOk(['apply', '--server-side', '--field-manager=test-user', '-f', '-'], {
      input: stringify({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'llmroute-controller-everywhere', namespace: releaseNamespace },
        spec: { holderIdentity: 'someone-else', leaseDurationSeconds: 3600, acquireTime: now, renewTime: now },
      }),
    });
    const watcherLogs: string[] = [];
    const healthPort = await freePort();
    const watcher = await startController({
      kc: kubeConfig(install.kubeconfig),
      namespaces: [],
      workers: 1,
      resyncMs: 30_000,
      metricsPort: healthPort,
      healthPort,
      leaderElection: { namespace: releaseNamespace, name: 'llmroute-controller-everywhere', identity: 'watcher', ...TIMING },
      log: createLogger({ level: 'info', write: (line) => void watcherLogs.push(line) }),
    });
    running.push(watcher);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200, { message: 'cluster-wide informers synced' });
    expect(watcher.isLeader()).toBe(false);
    expect(watcherLogs.filter((line) => /forbidden|\b403\b/i.test(line))).toEqual([]);

    const logs: string[] = [];
    const controller = await startAs(install, [namespace], logs);
    await waitFor(() => controller.isLeader(), { message: 'leading' });
    await lifecycle(namespace, logs);
    expect(watcherLogs.filter((line) => /forbidden|\b403\b/i.test(line))).toEqual([]);

    // The ClusterRole's rules apply in every namespace; the Lease rule only in the release namespace.
    expect(await rulesIn(install.kubeconfig, namespace)).toEqual(flatten(RECONCILE_RULES));
    expect(await rulesIn(install.kubeconfig, 'default')).toEqual(flatten(RECONCILE_RULES));
    expect(await rulesIn(install.kubeconfig, releaseNamespace)).toEqual(flatten([...RECONCILE_RULES, ...LEASE_RULES]));

    const k = install.kubeconfig;
    expect(await can(k, ['list', 'llmroutes.llmroute.dev', '--all-namespaces'])).toBe(true);
    expect(await can(k, ['list', 'secrets', '--all-namespaces'])).toBe(false);
    expect(await can(k, ['watch', 'secrets', '-n', namespace])).toBe(false);
    expect(await can(k, ['update', 'deployments.apps', '-n', namespace])).toBe(false);
    expect(await can(k, ['update', 'llmroutes.llmroute.dev', '-n', namespace])).toBe(false);
    expect(await can(k, ['list', 'namespaces'])).toBe(false);
    expect(await can(k, ['get', 'nodes'])).toBe(false);
    expect(await can(k, ['list', 'pods', '--all-namespaces'])).toBe(false);
    expect(await can(k, ['create', 'customresourcedefinitions.apiextensions.k8s.io'])).toBe(false);
    expect(await can(k, ['escalate', 'clusterroles.rbac.authorization.k8s.io'])).toBe(false);
    expect(await can(k, ['get', 'leases.coordination.k8s.io', '-n', namespace])).toBe(false);
  });
});
