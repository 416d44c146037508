/**
 * Reconciles one LLMRoute, level-triggered and idempotent: everything is computed from the object and what the
 * cluster holds now, never from the event that woke us. validate → resolve keys → render (the function `cdk8s synth`
 * uses) → server-side apply → prune → status. An environment whose keys are missing keeps its last good objects:
 * only its ExternalSecrets are applied (so External Secrets Operator can produce the keys), nothing else.
 */
import { API_VERSION, KIND } from '../api/group.js';
import { keyMounts, type KeyMount } from '../api/mounts.js';
import type { Environment, LLMRoute, LLMRouteStatus } from '../api/schema.js';
import { validateRoute } from '../api/validate.js';
import { formatPath } from '../api/paths.js';
import { renderEnvironment, type KubernetesObject } from '../render/render.js';
import { ENVIRONMENT_LABEL, MANAGED_BY, ROUTE_LABEL } from '../render/labels.js';
import { mergeConditions, readyCondition, type ConditionInput } from './conditions.js';
import { isNotFound, type KubeClient } from './kube-client.js';
import { resolveKeys, type KeyVerdict, type ObservedKey } from './keys.js';
import { OWNED_KINDS, resourceByKind, resourceOf, resourcePath } from './resources.js';
import type { EnvironmentPlan, EnvironmentPlanner } from './plan.js';
import { durationToMilliseconds } from '../api/patterns.js';
import { FORCE_SYNC_ANNOTATION, forceSyncDue } from './rotation.js';

export const FIELD_MANAGER = 'llmroute';
/** How soon to look again at an environment waiting for a key: nothing watches Secrets, by design. */
export const KEY_RETRY_MS = 10_000;

type EnvironmentStatus = NonNullable<LLMRouteStatus['environments']>[number];

export interface RouteObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid: string; generation?: number; annotations?: Record<string, string> };
  spec?: unknown;
  status?: LLMRouteStatus;
}

export interface EventRecorder {
  record(route: RouteObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export interface ReconcileContext {
  client: KubeClient;
  image?: string;
  now: () => Date;
  events: EventRecorder;
  planner: EnvironmentPlanner;
  log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
  /** What happened, for logs and tests. */
  outcome: 'invalid' | 'applied' | 'held' | 'degraded';
  /** Every flag's percentage per environment, as written to status; absent when the spec was invalid (nothing changed). */
  flags?: { environment: string; flag: string; percent: number }[];
}

interface EnvironmentOutcome {
  status: EnvironmentStatus;
  keys: KeyVerdict;
  desired: KubernetesObject[];
  applied: boolean;
  applyError?: string;
  plan: EnvironmentPlan;
  rolledOut: boolean;
}

async function observeKey(client: KubeClient, namespace: string, mount: KeyMount): Promise<ObservedKey> {
  const secret = await client
    .get<{ data?: Record<string, string> }>(resourcePath(resourceByKind('Secret'), namespace, mount.secretName))
    .then((s) => ({ exists: true, value: s.data?.[mount.secretKey] === undefined ? undefined : Buffer.from(s.data[mount.secretKey] as string, 'base64').toString('utf8') }))
    .catch((error: unknown) => {
      if (isNotFound(error)) return { exists: false };
      throw error;
    });
  if (!mount.externalSecret) return { secret };
  const externalSecret = await client
    .get<{ metadata: { annotations?: Record<string, string> }; status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } }>(resourcePath(resourceByKind('ExternalSecret'), namespace, mount.secretName))
    .then((es) => {
      const ready = es.status?.conditions?.find((c) => c.type === 'Ready');
      return { exists: true, ...(ready ? { ready } : {}), ...(es.metadata.annotations ? { annotations: es.metadata.annotations } : {}) };
    })
    .catch((error: unknown) => {
      if (isNotFound(error)) return { exists: false };
      throw error;
    });
  return { secret, externalSecret };
}

async function applyObjects(client: KubeClient, objects: readonly KubernetesObject[]): Promise<void> {
  for (const object of objects) {
    const path = resourcePath(resourceOf(object.apiVersion, object.kind), object.metadata.namespace, object.metadata.name);
    await client.apply(path, object, FIELD_MANAGER);
  }
}

interface DeploymentState {
  metadata: { generation?: number };
  spec?: { replicas?: number };
  status?: { observedGeneration?: number; replicas?: number; updatedReplicas?: number; readyReplicas?: number; availableReplicas?: number; conditions?: { type: string; status: string }[] };
}

async function readDeployment(client: KubeClient, namespace: string, name: string): Promise<DeploymentState | undefined> {
  return client.get<DeploymentState>(resourcePath(resourceByKind('Deployment'), namespace, name)).catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
}

/** The Deployment controller has acted on the current template: every replica runs it (ready or not). */
function rolledOut(deployment: DeploymentState | undefined): boolean {
  if (!deployment) return false;
  const desired = deployment.spec?.replicas ?? 1;
  const status = deployment.status ?? {};
  return (status.observedGeneration ?? 0) >= (deployment.metadata.generation ?? 0) && (status.updatedReplicas ?? 0) >= desired;
}

async function reconcileEnvironment(ctx: ReconcileContext, object: RouteObject, route: LLMRoute, environment: Environment): Promise<EnvironmentOutcome> {
  const namespace = object.metadata.namespace;
  const previous = object.status?.environments?.find((e) => e.name === environment.name);
  const now = ctx.now();
  const mounts = keyMounts(route, environment);
  const plan = await ctx.planner.plan(object, route, environment, previous, now);
  const owner = { apiVersion: API_VERSION, kind: KIND, name: object.metadata.name, uid: object.metadata.uid };
  const rendered = renderEnvironment({ route, environment: environment.name, namespace, owner, flagPercents: plan.percents, ...(ctx.image ? { image: ctx.image } : {}) });
  const externalSecrets = rendered.objects.filter((o) => o.kind === 'ExternalSecret');

  let applyError: string | undefined;
  try {
    // Always: External Secrets Operator can only produce a missing key from an ExternalSecret that exists.
    await applyObjects(ctx.client, externalSecrets);
  } catch (error) {
    applyError = (error as Error).message;
  }
  const observations = new Map<KeyMount, ObservedKey>();
  for (const mount of mounts) observations.set(mount, await observeKey(ctx.client, namespace, mount));
  const keys = resolveKeys({ name: object.metadata.name, namespace }, environment.name, mounts, (m) => observations.get(m) as ObservedKey, previous?.keys, now.toISOString());
  const rotation = environment.rotateEvery ? await requestRotation(ctx, namespace, observations, durationToMilliseconds(environment.rotateEvery), now) : undefined;

  let applied = false;
  if (keys.resolved && !applyError) {
    try {
      await applyObjects(ctx.client, rendered.objects.filter((o) => o.kind !== 'ExternalSecret'));
      applied = true;
    } catch (error) {
      applyError = (error as Error).message;
    }
  }
  const deployment = await readDeployment(ctx.client, namespace, `${route.metadata.name}-${environment.name}`);
  const available = deployment?.status?.conditions?.find((c) => c.type === 'Available')?.status === 'True';
  const status: EnvironmentStatus = {
    name: environment.name,
    ready: available && (deployment?.status?.availableReplicas ?? 0) >= (deployment?.spec?.replicas ?? 1),
    readyReplicas: deployment?.status?.readyReplicas ?? 0,
    ...(applied ? { configHash: rendered.configHash } : previous?.configHash ? { configHash: previous.configHash } : {}),
    keys: keys.keys,
    ...(plan.flags.length ? { flags: plan.flags } : {}),
    ...(plan.spend ? { spend: plan.spend } : {}),
  };
  const requeueAfterMs = [plan.requeueAfterMs, rotation].filter((ms): ms is number => ms !== undefined);
  return {
    status,
    keys,
    desired: rendered.objects,
    applied,
    plan: requeueAfterMs.length ? { ...plan, requeueAfterMs: Math.min(...requeueAfterMs) } : plan,
    rolledOut: applied && rolledOut(deployment),
    ...(applyError ? { applyError } : {}),
  };
}

/** Sets `force-sync` on ExternalSecrets whose last request is `everyMs` old; returns when the next one is due. */
async function requestRotation(ctx: ReconcileContext, namespace: string, observations: Map<KeyMount, ObservedKey>, everyMs: number, now: Date): Promise<number> {
  let next = everyMs;
  for (const [mount, observed] of observations) {
    if (!mount.externalSecret || !observed.externalSecret?.exists) continue;
    const due = forceSyncDue(observed.externalSecret.annotations, everyMs, now);
    if (!due.due) {
      next = Math.min(next, due.inMs);
      continue;
    }
    await ctx.client.mergePatch(resourcePath(resourceByKind('ExternalSecret'), namespace, mount.secretName), { metadata: { annotations: { [FORCE_SYNC_ANNOTATION]: now.toISOString() } } });
    ctx.log('info', 'asked External Secrets Operator to refresh a key', { namespace, externalSecret: mount.secretName, provider: mount.provider });
  }
  return next;
}

/** Deletes objects this route owns that no environment renders any more (a removed environment, a removed key source). */
async function prune(ctx: ReconcileContext, object: RouteObject, desired: readonly KubernetesObject[]): Promise<string[]> {
  const keep = new Set(desired.map((o) => `${o.kind}/${o.metadata.name}`));
  const selector = `${ROUTE_LABEL}=${object.metadata.name},app.kubernetes.io/managed-by=${MANAGED_BY}`;
  const deleted: string[] = [];
  for (const kind of OWNED_KINDS) {
    const type = resourceByKind(kind);
    const { items } = await ctx.client.list<{ metadata: { name: string; ownerReferences?: { uid: string }[]; labels?: Record<string, string> } }>(resourcePath(type, object.metadata.namespace), selector);
    for (const item of items) {
      const owned = item.metadata.ownerReferences?.some((ref) => ref.uid === object.metadata.uid);
      if (!owned || keep.has(`${kind}/${item.metadata.name}`)) continue;
      await ctx.client.delete(resourcePath(type, object.metadata.namespace, item.metadata.name)).catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
      deleted.push(`${kind}/${item.metadata.name} (environment ${item.metadata.labels?.[ENVIRONMENT_LABEL] ?? '?'})`);
    }
  }
  return deleted;
}

async function writeStatus(ctx: ReconcileContext, object: RouteObject, status: LLMRouteStatus): Promise<void> {
  if (JSON.stringify(object.status ?? {}) === JSON.stringify(status)) return;
  const path = resourcePath(resourceOf(API_VERSION, KIND), object.metadata.namespace, object.metadata.name, 'status');
  await ctx.client.mergePatch(path, { status: { ...status, conditions: status.conditions, environments: status.environments } }).catch((error: unknown) => {
    // The route was deleted while we worked: nothing left to report on.
    if (!isNotFound(error)) throw error;
  });
}

function invalidStatus(object: RouteObject, message: string, now: string): LLMRouteStatus {
  const generation = object.metadata.generation ?? 0;
  const invalid: ConditionInput = { type: 'ConfigValid', status: 'False', reason: 'InvalidSpec', message };
  // Every condition is set from the first reconcile on; what an invalid spec cannot say is Unknown.
  const unknown = (['KeysResolved', 'Available', 'Progressing', 'Degraded', 'BudgetExceeded'] as const)
    .filter((type) => !object.status?.conditions?.some((c) => c.type === type))
    .map((type): ConditionInput => ({ type, status: 'Unknown', reason: 'InvalidSpec', message: 'not evaluated: the spec is invalid' }));
  return {
    ...object.status,
    observedGeneration: generation,
    conditions: mergeConditions(object.status?.conditions, [readyCondition([invalid]), invalid, ...unknown], generation, now),
  };
}

export async function reconcileRoute(ctx: ReconcileContext, object: RouteObject): Promise<ReconcileResult> {
  const now = ctx.now().toISOString();
  const generation = object.metadata.generation ?? 0;
  const validation = validateRoute({ apiVersion: object.apiVersion, kind: object.kind, metadata: object.metadata, spec: object.spec });
  if (!validation.route) {
    const errors = validation.findings.filter((f) => f.severity === 'error').map((f) => `${formatPath(f.path)}: ${f.message}`);
    const message = `the spec is invalid, so nothing was applied and the last good objects keep serving: ${errors.join('; ')}`;
    if (object.status?.conditions?.find((c) => c.type === 'ConfigValid')?.status !== 'False') await ctx.events.record(object, 'Warning', 'InvalidSpec', message);
    await writeStatus(ctx, object, invalidStatus(object, message, now));
    return { outcome: 'invalid' };
  }
  const route = validation.route;
  const outcomes: EnvironmentOutcome[] = [];
  for (const environment of route.spec.environments) outcomes.push(await reconcileEnvironment(ctx, object, route, environment));

  let pruneError: string | undefined;
  try {
    const deleted = await prune(ctx, object, outcomes.flatMap((o) => o.desired));
    if (deleted.length) await ctx.events.record(object, 'Normal', 'Pruned', `deleted objects no environment renders any more: ${deleted.join(', ')}`);
  } catch (error) {
    pruneError = (error as Error).message;
  }

  const missing = outcomes.filter((o) => !o.keys.resolved);
  const failures = [...outcomes.flatMap((o) => (o.applyError ? [`environment "${o.status.name}": ${o.applyError}`] : [])), ...(pruneError ? [`pruning: ${pruneError}`] : [])];
  const aborted = outcomes.flatMap((o) => o.plan.degraded);
  const unavailable = outcomes.filter((o) => !o.status.ready).map((o) => o.status.name);
  const stepping = outcomes.filter((o) => o.applied && !o.rolledOut).map((o) => o.status.name);
  const flagProgress = outcomes.flatMap((o) => o.plan.progressing);
  const flagPaused = outcomes.flatMap((o) => o.plan.paused ?? []);
  const conditions: ConditionInput[] = [
    { type: 'ConfigValid', status: 'True', reason: 'Valid', message: 'the spec passed validation' },
    missing.length
      ? { type: 'KeysResolved', status: 'False', reason: (missing[0] as EnvironmentOutcome).keys.reason, message: missing.map((o) => o.keys.message).join(' ') }
      : { type: 'KeysResolved', status: 'True', reason: 'KeysResolved', message: `every key of ${outcomes.length} environment${outcomes.length === 1 ? '' : 's'} is present` },
    failures.length
      ? { type: 'Degraded', status: 'True', reason: 'ApplyFailed', message: failures.join('; ') }
      : aborted.length
        ? { type: 'Degraded', status: 'True', reason: 'RolloutAborted', message: aborted.map((a) => a.message).join('; ') }
        : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no failures' },
    stepping.length || flagProgress.length
      ? { type: 'Progressing', status: 'True', reason: stepping.length ? 'RollingOut' : 'RolloutStepping', message: [...stepping.map((e) => `environment "${e}": gateway pods are being replaced`), ...flagProgress.map((p) => p.message)].join('; ') }
      : flagPaused.length
        ? { type: 'Progressing', status: 'Unknown', reason: 'RolloutPaused', message: flagPaused.map((p) => p.message).join('; ') }
        : { type: 'Progressing', status: 'False', reason: 'Complete', message: 'nothing in progress' },
    unavailable.length
      ? { type: 'Available', status: 'False', reason: 'GatewayUnavailable', message: `gateway pods not (all) available in: ${unavailable.join(', ')}` }
      : { type: 'Available', status: 'True', reason: 'GatewaysAvailable', message: 'every environment has all its gateway pods available' },
  ];
  const budget = outcomes.flatMap((o) => (o.plan.budget ? [o.plan.budget] : []));
  conditions.push(budget.find((b) => b.status === 'True') ?? budget[0] ?? { type: 'BudgetExceeded', status: 'Unknown', reason: 'NoSpendData', message: 'spend is not measured (no Prometheus configured for the controller)' });
  conditions.unshift(readyCondition(conditions));

  const previousKeysResolved = object.status?.conditions?.find((c) => c.type === 'KeysResolved')?.status;
  if (missing.length && previousKeysResolved !== 'False') await ctx.events.record(object, 'Warning', 'KeyMissing', conditions.find((c) => c.type === 'KeysResolved')!.message);
  if (!missing.length && previousKeysResolved === 'False') await ctx.events.record(object, 'Normal', 'KeysResolved', 'every key is present again; rolling out');
  for (const outcome of outcomes) for (const event of outcome.plan.events) await ctx.events.record(object, event.type, event.reason, event.message);

  await writeStatus(ctx, object, {
    observedGeneration: generation,
    conditions: mergeConditions(object.status?.conditions, conditions, generation, now),
    environments: outcomes.map((o) => o.status),
  });
  const waits = [...(missing.length ? [KEY_RETRY_MS] : []), ...outcomes.flatMap((o) => (o.plan.requeueAfterMs === undefined ? [] : [o.plan.requeueAfterMs]))];
  return {
    outcome: failures.length ? 'degraded' : missing.length ? 'held' : 'applied',
    flags: outcomes.flatMap((o) => (o.status.flags ?? []).map((f) => ({ environment: o.status.name, flag: f.name, percent: f.percent }))),
    ...(waits.length ? { requeueAfterMs: Math.min(...waits) } : {}),
  };
}
