/**
 * Reconciles one LLMRoute, level-triggered and idempotent: everything is computed from the object and what the
 * cluster holds now, never from the event that woke us. validate → resolve keys → render (the function `cdk8s synth`
 * uses) → server-side apply → prune → status. An environment whose keys are missing keeps its last good objects:
 * only its ExternalSecrets are applied (so External Secrets Operator can produce the keys), nothing else.
 *
 * What the cluster holds is read from the caches of owned objects (owned.ts), except Secrets, which are read by name
 * (once per pass each) because the controller may not list or watch them. Objects are applied only when needed
 * (`decideApply`), and status is written only when it changed.
 */
import { API_VERSION, KIND } from '../api/group.js';
import { canonicalJson } from '../api/canonical-json.js';
import { keyMounts, type KeyMount } from '../api/mounts.js';
import type { Environment, LLMRoute, LLMRouteStatus } from '../api/schema.js';
import { validateRoute } from '../api/validate.js';
import { formatPath } from '../api/paths.js';
import { renderEnvironment, type KubernetesObject } from '../render/render.js';
import type { LlmRouteProps } from '../render/llmroute.js';
import { ENVIRONMENT_LABEL } from '../render/labels.js';
import { mergeConditions, readyCondition, type ConditionInput } from './conditions.js';
import { METADATA_ONLY, isNotFound, type KubeClient } from './kube-client.js';
import { resolveKeys, type KeyVerdict, type ObservedKey } from './keys.js';
import { OWNED_KINDS, resourceByKind, resourceOf, resourcePath } from './resources.js';
import { WITH_STATUS, decideApply, renderedHash, stripOwned, type AppliedObjects, type OwnedObject, type RenderSummary } from './owned.js';
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
  metadata: { name: string; namespace: string; uid: string; generation?: number; resourceVersion?: string; annotations?: Record<string, string> };
  spec?: unknown;
  status?: LLMRouteStatus;
}

export interface EventRecorder {
  record(route: RouteObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

/** The watch caches of the owned kinds (stripped, see owned.ts). */
export interface OwnedCache {
  get(kind: string, namespace: string, name: string): OwnedObject | undefined;
  /** The objects labelled with this route. */
  ofRoute(namespace: string, name: string): readonly OwnedObject[];
}

export interface ReconcileContext {
  client: KubeClient;
  image?: string;
  now: () => Date;
  events: EventRecorder;
  planner: EnvironmentPlanner;
  owned: OwnedCache;
  applied: AppliedObjects;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
  /** What happened, for logs and tests. */
  outcome: 'invalid' | 'applied' | 'held' | 'degraded';
  /** Every flag's percentage (and rollout step) per environment, as written to status; absent when the spec was invalid (nothing changed). */
  flags?: { environment: string; flag: string; percent: number; step?: number }[];
  /** The route's resourceVersion after this pass: of the status written, or of the route read if status did not change. Absent once deleted. */
  resourceVersion?: string;
}

interface EnvironmentOutcome {
  status: EnvironmentStatus;
  keys: KeyVerdict;
  desired: RenderSummary['objects'];
  applied: boolean;
  applyError?: string;
  plan: EnvironmentPlan;
  rolledOut: boolean;
}

type SecretRead = { exists: false } | { exists: true; data: Record<string, string> };

/** Reads each Secret at most once per pass: environments and key sources often share one. */
function secretReader(client: KubeClient, namespace: string): (name: string) => Promise<SecretRead> {
  const reads = new Map<string, Promise<SecretRead>>();
  return (name) => {
    const read =
      reads.get(name) ??
      client
        .get<{ data?: Record<string, string> }>(resourcePath(resourceByKind('Secret'), namespace, name))
        .then((secret): SecretRead => ({ exists: true, data: secret.data ?? {} }))
        .catch((error: unknown): SecretRead => {
          if (isNotFound(error)) return { exists: false };
          throw error;
        });
    reads.set(name, read);
    return read;
  };
}

async function observeKey(readSecret: (name: string) => Promise<SecretRead>, externalSecret: OwnedObject | undefined, mount: KeyMount): Promise<ObservedKey> {
  const read = await readSecret(mount.secretName);
  const encoded = read.exists ? read.data[mount.secretKey] : undefined;
  const secret = { exists: read.exists, value: encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8') };
  if (!mount.externalSecret) return { secret };
  if (!externalSecret) return { secret, externalSecret: { exists: false } };
  const ready = externalSecret.status?.conditions?.find((c) => c.type === 'Ready');
  return { secret, externalSecret: { exists: true, ...(ready ? { ready } : {}), ...(externalSecret.metadata.annotations ? { annotations: externalSecret.metadata.annotations } : {}) } };
}

const routeKey = (route: RouteObject) => `${route.metadata.namespace}/${route.metadata.name}`;
const objectKey = (object: { kind: string; metadata: { name: string } }) => `${object.kind}/${object.metadata.name}`;

/**
 * The environment's render: the summary of the last pass's when its inputs are the same, the objects themselves only
 * if something is to be applied.
 */
function renderOnce(ctx: ReconcileContext, route: string, props: Omit<LlmRouteProps, 'disableResourceNameHashes'>): { summary: RenderSummary; objects: () => KubernetesObject[] } {
  // The route's metadata without the server's bookkeeping (resourceVersion moves with every status write).
  const { name, namespace, labels, annotations } = props.route.metadata;
  const inputs = renderedHash({ ...props, route: { ...props.route, metadata: { name, namespace, labels, annotations } } });
  let objects: KubernetesObject[] | undefined;
  const render = () => {
    const rendered = renderEnvironment(props);
    objects = rendered.objects;
    return rendered;
  };
  const known = ctx.applied.rendering(route, props.environment);
  let summary = known?.inputs === inputs ? known : undefined;
  if (!summary) {
    const rendered = render();
    summary = { inputs, configHash: rendered.configHash, objects: rendered.objects.map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, hash: renderedHash(o) })) };
    ctx.applied.setRendering(route, props.environment, summary);
  }
  return { summary, objects: () => objects ?? render().objects };
}

/**
 * Applies the objects that need it (`decideApply`) and records what the API server answered. Returns the answers,
 * stripped, by `Kind/name`: fresher than the cache, which has not seen them yet.
 */
async function applyObjects(ctx: ReconcileContext, route: RouteObject, items: RenderSummary['objects'], objects: () => KubernetesObject[]): Promise<Map<string, OwnedObject>> {
  const answers = new Map<string, OwnedObject>();
  const key = routeKey(route);
  const { namespace } = route.metadata;
  for (const item of items) {
    const id = `${item.kind}/${item.name}`;
    const decision = decideApply(item.hash, ctx.applied.get(key, id), ctx.owned.get(item.kind, namespace, item.name), ctx.now().getTime());
    if (!decision.apply) continue;
    const object = objects().find((o) => o.kind === item.kind && o.metadata.name === item.name) as KubernetesObject;
    const path = resourcePath(resourceOf(item.apiVersion, item.kind), namespace, item.name);
    // In the form the cache holds (see owned.ts): for most kinds metadata only, a fraction of the object.
    const raw = await ctx.client.apply<object>(path, object, FIELD_MANAGER, WITH_STATUS.has(item.kind) ? undefined : METADATA_ONLY);
    const answer = stripOwned({ ...raw, apiVersion: item.apiVersion, kind: item.kind });
    ctx.applied.set(key, id, { renderedHash: item.hash, version: answer.version, ...(answer.metadata.resourceVersion ? { resourceVersion: answer.metadata.resourceVersion } : {}), at: ctx.now().getTime() });
    answers.set(id, answer);
    ctx.log('debug', 'applied', { route: key, object: id, reason: decision.reason, why: decision.message });
  }
  return answers;
}

/** The Deployment controller has acted on the current template: every replica runs it (ready or not). */
function rolledOut(deployment: OwnedObject | undefined): boolean {
  if (!deployment) return false;
  const desired = deployment.spec?.replicas ?? 1;
  const status = deployment.status ?? {};
  return (status.observedGeneration ?? 0) >= (deployment.metadata.generation ?? 0) && (status.updatedReplicas ?? 0) >= desired;
}

async function reconcileEnvironment(ctx: ReconcileContext, object: RouteObject, route: LLMRoute, environment: Environment, readSecret: (name: string) => Promise<SecretRead>): Promise<EnvironmentOutcome> {
  const namespace = object.metadata.namespace;
  const previous = object.status?.environments?.find((e) => e.name === environment.name);
  const now = ctx.now();
  const mounts = keyMounts(route, environment);
  const plan = await ctx.planner.plan(object, route, environment, previous, now);
  const owner = { apiVersion: API_VERSION, kind: KIND, name: object.metadata.name, uid: object.metadata.uid };
  const { summary, objects } = renderOnce(ctx, routeKey(object), { route, environment: environment.name, namespace, owner, flagPercents: plan.percents, ...(ctx.image ? { image: ctx.image } : {}) });

  let applyError: string | undefined;
  let answers = new Map<string, OwnedObject>();
  try {
    // Always: External Secrets Operator can only produce a missing key from an ExternalSecret that exists.
    answers = await applyObjects(ctx, object, summary.objects.filter((o) => o.kind === 'ExternalSecret'), objects);
  } catch (error) {
    applyError = (error as Error).message;
  }
  const live = (kind: string, name: string) => answers.get(`${kind}/${name}`) ?? ctx.owned.get(kind, namespace, name);
  const observations = new Map<KeyMount, ObservedKey>();
  for (const mount of mounts) observations.set(mount, await observeKey(readSecret, live('ExternalSecret', mount.secretName), mount));
  const keys = resolveKeys({ name: object.metadata.name, namespace }, environment.name, mounts, (m) => observations.get(m) as ObservedKey, previous?.keys, now.toISOString());
  const rotation = environment.rotateEvery ? await requestRotation(ctx, namespace, observations, durationToMilliseconds(environment.rotateEvery), now) : undefined;

  let applied = false;
  if (keys.resolved && !applyError) {
    try {
      for (const [id, answer] of await applyObjects(ctx, object, summary.objects.filter((o) => o.kind !== 'ExternalSecret'), objects)) answers.set(id, answer);
      applied = true;
    } catch (error) {
      applyError = (error as Error).message;
    }
  }
  const deployment = live('Deployment', `${route.metadata.name}-${environment.name}`);
  const available = deployment?.status?.conditions?.find((c) => c.type === 'Available')?.status === 'True';
  const status: EnvironmentStatus = {
    name: environment.name,
    ready: available && (deployment?.status?.availableReplicas ?? 0) >= (deployment?.spec?.replicas ?? 1),
    readyReplicas: deployment?.status?.readyReplicas ?? 0,
    ...(applied ? { configHash: summary.configHash } : previous?.configHash ? { configHash: previous.configHash } : {}),
    keys: keys.keys,
    ...(plan.flags.length ? { flags: plan.flags } : {}),
    ...(plan.spend ? { spend: plan.spend } : {}),
  };
  const requeueAfterMs = [plan.requeueAfterMs, rotation].filter((ms): ms is number => ms !== undefined);
  return {
    status,
    keys,
    desired: summary.objects,
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
async function prune(ctx: ReconcileContext, object: RouteObject, desired: RenderSummary['objects']): Promise<string[]> {
  const keep = new Set(desired.map((o) => `${o.kind}/${o.name}`));
  const { name, namespace, uid } = object.metadata;
  const deleted: string[] = [];
  const byKind = (a: OwnedObject, b: OwnedObject) => OWNED_KINDS.indexOf(a.kind) - OWNED_KINDS.indexOf(b.kind) || a.metadata.name.localeCompare(b.metadata.name);
  for (const item of [...ctx.owned.ofRoute(namespace, name)].sort(byKind)) {
    const id = objectKey(item);
    if (keep.has(id) || !item.metadata.ownerReferences?.some((ref) => ref.uid === uid)) continue;
    // Gone already (the cache may lag behind a deletion a moment ago): not deleted by this pass, so not reported.
    const gone = await ctx.client.delete(resourcePath(resourceOf(item.apiVersion, item.kind), namespace, item.metadata.name)).then(
      () => false,
      (error: unknown) => {
        if (isNotFound(error)) return true;
        throw error;
      },
    );
    if (!gone) deleted.push(`${id} (environment ${item.metadata.labels?.[ENVIRONMENT_LABEL] ?? '?'})`);
  }
  return deleted;
}

/** Writes status if it changed; returns the route's resourceVersion afterwards (undefined once deleted). */
async function writeStatus(ctx: ReconcileContext, object: RouteObject, status: LLMRouteStatus): Promise<string | undefined> {
  // Canonical: the API server returns a custom resource's fields in sorted order, not in the order they were written.
  if (canonicalJson(object.status ?? {}) === canonicalJson(status)) return object.metadata.resourceVersion;
  const path = resourcePath(resourceOf(API_VERSION, KIND), object.metadata.namespace, object.metadata.name, 'status');
  return ctx.client
    .mergePatch<{ metadata: { resourceVersion?: string } }>(path, { status: { ...status, conditions: status.conditions, environments: status.environments } })
    .then((written) => written.metadata.resourceVersion)
    .catch((error: unknown) => {
      // The route was deleted while we worked: nothing left to report on.
      if (!isNotFound(error)) throw error;
      return undefined;
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
    const resourceVersion = await writeStatus(ctx, object, invalidStatus(object, message, now));
    return { outcome: 'invalid', ...(resourceVersion ? { resourceVersion } : {}) };
  }
  const route = validation.route;
  const outcomes: EnvironmentOutcome[] = [];
  const readSecret = secretReader(ctx.client, object.metadata.namespace);
  for (const environment of route.spec.environments) outcomes.push(await reconcileEnvironment(ctx, object, route, environment, readSecret));

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

  const resourceVersion = await writeStatus(ctx, object, {
    observedGeneration: generation,
    conditions: mergeConditions(object.status?.conditions, conditions, generation, now),
    environments: outcomes.map((o) => o.status),
  });
  const waits = [...(missing.length ? [KEY_RETRY_MS] : []), ...outcomes.flatMap((o) => (o.plan.requeueAfterMs === undefined ? [] : [o.plan.requeueAfterMs]))];
  return {
    outcome: failures.length ? 'degraded' : missing.length ? 'held' : 'applied',
    flags: outcomes.flatMap((o) => (o.status.flags ?? []).map((f) => ({ environment: o.status.name, flag: f.name, percent: f.percent, ...(f.step === undefined ? {} : { step: f.step }) }))),
    ...(waits.length ? { requeueAfterMs: Math.min(...waits) } : {}),
    ...(resourceVersion ? { resourceVersion } : {}),
  };
}
