/**
 * The controller process: informers fill caches and enqueue route keys; workers reconcile them while this replica
 * holds the leader lease. Caches stay warm on every replica, so a new leader starts reconciling at once.
 * It watches LLMRoutes and the objects it owns (every owned kind, by label, stripped: see owned.ts), never Secrets:
 * key Secrets are read one by one, by name.
 *
 * Events the controller caused itself do not wake a route again: a watched version of a route equal to the one its
 * last pass left, or of an owned object equal to what its last apply answered, holds nothing the controller does not
 * know. Everything else wakes the route: someone else's change, a deletion, a Deployment's status moving. Events that
 * arrive while the route's pass runs are judged when it ends: the watch usually delivers a write before its answer.
 */
import os from 'node:os';
import type * as k8s from '@kubernetes/client-node';
import { API_VERSION, KIND } from '../api/group.js';
import { ROUTE_LABEL, MANAGED_BY } from '../render/labels.js';
import type { Logger } from '../log.js';
import { KubeEventRecorder } from './events.js';
import { startInformer, type Informer } from './informer.js';
import { KubeClient, METADATA_LIST_ONLY, isNotFound } from './kube-client.js';
import { AppliedObjects, OwnedIndex, WITH_STATUS, stripOwned, type OwnedObject } from './owned.js';
import { LeaderElector } from './leader-election.js';
import { ControllerMetrics } from './metrics.js';
import { staticPlanner, type EnvironmentPlanner } from './plan.js';
import { PrometheusPlanner } from './prometheus-planner.js';
import { prometheusClient } from './prometheus.js';
import { WorkQueue, runWorkers } from './queue.js';
import { reconcileRoute, type RouteObject } from './reconcile.js';
import { OWNED_KINDS, resourceByKind, resourceOf, resourcePath } from './resources.js';
import { startServer } from './server.js';

export interface ControllerOptions {
  kc: k8s.KubeConfig;
  /** Namespaces to watch; empty for all. */
  namespaces: string[];
  workers: number;
  resyncMs: number;
  gatewayImage?: string;
  prometheusUrl?: string;
  leaderElection?: {
    namespace: string;
    name: string;
    identity?: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
    /** Whether `stop()` hands the lease over at once (default) or leaves it to expire, as a crash would. */
    releaseOnStop?: boolean;
  };
  metricsPort: number;
  healthPort: number;
  log: Logger;
}

export interface RunningController {
  isLeader(): boolean;
  stop(): Promise<void>;
}

/** Routes reconciled in parallel by default. Reconciling waits on the API server, not on this process's CPU. */
export const DEFAULT_WORKERS = 8;

/** What one leadership term knows; a new term starts without it, so nothing another leader did in between is missed. */
interface Term {
  applied: AppliedObjects;
  /** Route key → the route's resourceVersion after this term's last pass over it. */
  passed: Map<string, string>;
}

const newTerm = (): Term => ({ applied: new AppliedObjects(), passed: new Map() });

/**
 * prometheus-operator's kinds: without their CRDs, applying them fails and routes report ApplyFailed
 * (docs/install.md), rather than no route being reconciled because their caches never sync.
 */
const OPTIONAL_KINDS = new Set(['ServiceMonitor', 'PrometheusRule']);

type CachedRoute = RouteObject & k8s.KubernetesObject;

/** The routes' cache transform: managedFields are never read and are a large part of every object. */
function stripManagedFields(route: CachedRoute): CachedRoute {
  const { managedFields: _managedFields, ...metadata } = route.metadata as CachedRoute['metadata'] & { managedFields?: unknown };
  return { ...route, metadata };
}

export async function startController(options: ControllerOptions): Promise<RunningController> {
  const { log } = options;
  const client = await KubeClient.create(options.kc);
  const metrics = new ControllerMetrics();
  const host = options.leaderElection?.identity ?? os.hostname();
  const events = new KubeEventRecorder(client, host, (level, message) => log(level, message));
  const planner: EnvironmentPlanner = options.prometheusUrl ? new PrometheusPlanner(prometheusClient({ url: options.prometheusUrl }), (level, message, fields) => log(level, message, fields)) : staticPlanner;
  const scopes = options.namespaces.length ? options.namespaces : [undefined];

  let queue: WorkQueue<string> | undefined;
  let term = newTerm();
  const enqueue = (namespace: string | undefined, name: string | undefined) => {
    if (namespace && name) queue?.add(`${namespace}/${name}`);
  };
  /** Route key → the events that arrived during its running pass, each as "is it news?", asked when the pass ends. */
  const during = new Map<string, Array<() => boolean>>();
  const wake = (namespace: string | undefined, name: string | undefined, isNews: () => boolean) => {
    if (!namespace || !name) return;
    const pending = during.get(`${namespace}/${name}`);
    if (pending) pending.push(isNews);
    else if (isNews()) enqueue(namespace, name);
  };

  const informerLog = (message: string, fields?: Record<string, unknown>) => log('info', message, fields);
  const routeType = resourceOf(API_VERSION, KIND);
  const routeInformers = new Map<string | undefined, Informer<CachedRoute>>();
  for (const namespace of scopes) {
    const path = resourcePath(routeType, namespace);
    routeInformers.set(
      namespace,
      startInformer<CachedRoute>({
        kc: options.kc,
        path,
        list: () => client.list<CachedRoute>(path) as Promise<k8s.KubernetesListObject<CachedRoute>>,
        transform: stripManagedFields,
        onEvent: (type, object) => {
          const { namespace: ns, name, resourceVersion } = object.metadata;
          // Not news: the status our last pass wrote, coming back.
          wake(ns, name, () => !((type === 'add' || type === 'update') && resourceVersion !== undefined && term.passed.get(`${ns}/${name}`) === resourceVersion));
        },
        resyncMs: options.resyncMs,
        log: informerLog,
      }),
    );
  }
  const owned = new OwnedIndex();
  const ownedInformers = scopes.flatMap((namespace) =>
    OWNED_KINDS.map((kind) => {
      const type = resourceByKind(kind);
      const path = resourcePath(type, namespace);
      const labelSelector = `app.kubernetes.io/managed-by=${MANAGED_BY},${ROUTE_LABEL}`;
      const metadataOnly = !WITH_STATUS.has(kind);
      return startInformer<OwnedObject>({
        kc: options.kc,
        path,
        labelSelector,
        metadataOnly,
        emptyUntilServed: OPTIONAL_KINDS.has(kind),
        // Raw until the transform: list items and metadata carry no (or another) apiVersion and kind; it sets them.
        list: () => client.list<OwnedObject>(path, labelSelector, metadataOnly ? METADATA_LIST_ONLY : undefined) as Promise<k8s.KubernetesListObject<OwnedObject>>,
        transform: (object) => stripOwned({ ...object, apiVersion: type.apiVersion, kind }),
        onEvent: (event, object) => {
          owned.update(event, object);
          const { namespace: ns, name, labels, resourceVersion } = object.metadata;
          const route = `${ns}/${labels?.[ROUTE_LABEL]}`;
          if (event === 'delete') term.applied.forget(route, `${kind}/${name}`);
          // Not news: what our last apply of it answered, coming back.
          wake(ns, labels?.[ROUTE_LABEL], () => event === 'delete' || !term.applied.isOwnWrite(route, `${kind}/${name}`, resourceVersion));
        },
        // The routes' own resync covers periodic work; these only need to wake a route on change.
        resyncMs: 0,
        log: informerLog,
      });
    }),
  );
  const scopeOf = (namespace: string) => (options.namespaces.length ? namespace : undefined);
  const informers = [...routeInformers.values(), ...ownedInformers];
  /**
   * The route as our last pass left it, from the cache when the cache holds exactly that version; otherwise as the
   * API server has it now. The cache may not yet hold the status written by the previous pass (a moment ago, or by
   * the previous leader), and transitions are computed against that status (KeyMissing/KeysResolved Events, rollout
   * steps): a stale copy would report them twice. A newer version than the cache's comes with its own event, which
   * wakes the route again. Undefined once deleted.
   */
  const currentRoute = async (key: string): Promise<RouteObject | undefined> => {
    const [namespace, name] = key.split('/') as [string, string];
    const cached = routeInformers.get(scopeOf(namespace))?.get(namespace, name);
    if (cached?.metadata.resourceVersion !== undefined && cached.metadata.resourceVersion === term.passed.get(key)) return cached;
    return client.get<RouteObject>(resourcePath(routeType, namespace, name)).catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
  };

  /**
   * llmroute_controller_rollout_percent and _step: one series per flag and environment of each route this term
   * reconciled (a step only for flags with a rollout); a series whose flag, environment or rollout went is removed.
   */
  const flagSeries = new Map<string, { percent: Set<string>; step: Set<string> }>();
  const publishFlags = (key: string, flags: NonNullable<Awaited<ReturnType<typeof reconcileRoute>>['flags']>) => {
    const [namespace, route] = key.split('/') as [string, string];
    const next = { percent: new Set<string>(), step: new Set<string>() };
    for (const f of flags) {
      const labels = { namespace, route, environment: f.environment, flag: f.flag };
      metrics.rolloutPercent.set(labels, f.percent);
      next.percent.add(JSON.stringify(labels));
      if (f.step === undefined) continue;
      metrics.rolloutStep.set(labels, f.step);
      next.step.add(JSON.stringify(labels));
    }
    const previous = flagSeries.get(key);
    for (const old of previous?.percent ?? []) if (!next.percent.has(old)) metrics.rolloutPercent.remove(JSON.parse(old) as Record<string, string>);
    for (const old of previous?.step ?? []) if (!next.step.has(old)) metrics.rolloutStep.remove(JSON.parse(old) as Record<string, string>);
    if (flags.length) flagSeries.set(key, next);
    else flagSeries.delete(key);
  };

  const reconcile = async (key: string) => {
    during.set(key, []);
    try {
      return await pass(key);
    } finally {
      const news = (during.get(key) ?? []).some((isNews) => isNews());
      during.delete(key);
      // The key is still being processed: the queue hands it out again once this pass is done.
      if (news) queue?.add(key);
    }
  };

  const pass = async (key: string) => {
    const route = await currentRoute(key);
    // Deleted: garbage collection removes what it owned, through the owner references.
    if (!route) {
      publishFlags(key, []);
      term.applied.forgetRoute(key);
      term.passed.delete(key);
      return;
    }
    const end = metrics.reconcileDuration.startTimer();
    try {
      const { applied } = term;
      const result = await reconcileRoute({ client, events, planner, owned, applied, now: () => new Date(), log, ...(options.gatewayImage ? { image: options.gatewayImage } : {}) }, route);
      end({ outcome: result.outcome });
      if (result.resourceVersion) term.passed.set(key, result.resourceVersion);
      if (result.flags) publishFlags(key, result.flags);
      log('info', 'reconciled', { route: key, outcome: result.outcome, ...(result.requeueAfterMs ? { requeueAfterMs: result.requeueAfterMs } : {}) });
      return result.requeueAfterMs === undefined ? undefined : { requeueAfterMs: result.requeueAfterMs };
    } catch (error) {
      end({ outcome: 'error' });
      throw error;
    }
  };

  /** One term of leadership: a fresh queue, every cached route enqueued, workers until the term ends. */
  const lead = async (signal: AbortSignal) => {
    await Promise.all(informers.map((i) => i.waitForSync()));
    const termQueue = new WorkQueue<string>();
    term = newTerm();
    queue = termQueue;
    metrics.leader.set(1);
    for (const informer of routeInformers.values()) for (const route of informer.list()) enqueue(route.metadata.namespace, route.metadata.name);
    const depth = setInterval(() => metrics.queueDepth.set(termQueue.len()), 1000);
    depth.unref();
    signal.addEventListener('abort', () => void termQueue.shutDownWithDrain(), { once: true });
    log('info', 'leading: reconciling', { workers: options.workers });
    await runWorkers(termQueue, options.workers, reconcile, (key, error) => {
      metrics.reconcileErrors.inc();
      log('error', 'reconcile failed; retrying with backoff', { route: key, error: (error as Error).message });
    });
    clearInterval(depth);
    metrics.leader.set(0);
    // Only the leader reports percentages: a replica that stopped leading would go on exporting stale ones.
    metrics.rolloutPercent.reset();
    metrics.rolloutStep.reset();
    flagSeries.clear();
    if (queue === termQueue) queue = undefined;
  };

  const synced = () => informers.every((i) => i.hasSynced());
  const servers = [await startServer(options.healthPort, { live: () => true, ready: synced }, metrics.registry)];
  if (options.metricsPort !== options.healthPort) servers.push(await startServer(options.metricsPort, { live: () => true, ready: synced }, metrics.registry));

  let elector: LeaderElector | undefined;
  let stopping = false;
  let standalone: AbortController | undefined;
  let leading: Promise<void> | undefined;
  if (options.leaderElection) {
    const election = options.leaderElection;
    // An elector leads at most once. A term that ends without stop() (the lease lost because the API server was out of
    // reach for longer than the renew deadline, or taken over) is followed by a new campaign with a new elector, as a
    // restarted pod would start one; otherwise this replica would stay up, healthy and never lead again. Nothing built
    // while leading carries over: lead() makes a fresh queue per term and the caches are shared by every term, and a
    // term's reconciles have finished before its elector's run() resolves.
    leading = (async () => {
      while (!stopping) {
        elector = new LeaderElector({
          kc: options.kc,
          ...election,
          identity: host,
          releaseOnStop: election.releaseOnStop ?? true,
          onStartedLeading: (signal) => lead(signal),
          onStoppedLeading: () => log('info', 'stopped leading'),
          log: (message, fields) => log('info', message, fields),
        });
        await elector.run();
        if (!stopping) log('warn', 'lost the leader lease; campaigning again', { lease: election.name, identity: host });
      }
    })();
  } else {
    standalone = new AbortController();
    leading = lead(standalone.signal);
  }

  return {
    isLeader: () => (options.leaderElection ? (elector?.isLeader() ?? false) : true),
    async stop() {
      stopping = true;
      await elector?.stop();
      standalone?.abort();
      await leading;
      await Promise.all(informers.map((i) => i.stop()));
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
      client.close();
    },
  };
}
