/**
 * The controller process: informers fill caches and enqueue route keys; workers reconcile them while this replica
 * holds the leader lease. Caches stay warm on every replica, so a new leader starts reconciling at once.
 * It watches LLMRoutes and the objects it owns (by label), never Secrets: key Secrets are read one by one, by name.
 */
import os from 'node:os';
import type * as k8s from '@kubernetes/client-node';
import { API_VERSION, KIND } from '../api/group.js';
import { ROUTE_LABEL, MANAGED_BY } from '../render/labels.js';
import type { Logger } from '../log.js';
import { KubeEventRecorder } from './events.js';
import { startInformer, type Informer } from './informer.js';
import { KubeClient, isNotFound } from './kube-client.js';
import { LeaderElector } from './leader-election.js';
import { ControllerMetrics } from './metrics.js';
import { staticPlanner, type EnvironmentPlanner } from './plan.js';
import { PrometheusPlanner } from './prometheus-planner.js';
import { prometheusClient } from './prometheus.js';
import { WorkQueue, runWorkers } from './queue.js';
import { reconcileRoute, type RouteObject } from './reconcile.js';
import { resourceByKind, resourceOf, resourcePath } from './resources.js';
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

/** The owned kinds whose changes should wake their route: status that feeds ours, and drift to repair. */
const WATCHED_OWNED = ['Deployment', 'ExternalSecret', 'ConfigMap'];

export async function startController(options: ControllerOptions): Promise<RunningController> {
  const { log } = options;
  const client = await KubeClient.create(options.kc);
  const metrics = new ControllerMetrics();
  const host = options.leaderElection?.identity ?? os.hostname();
  const events = new KubeEventRecorder(client, host, (level, message) => log(level, message));
  const planner: EnvironmentPlanner = options.prometheusUrl ? new PrometheusPlanner(prometheusClient({ url: options.prometheusUrl }), (level, message, fields) => log(level, message, fields)) : staticPlanner;
  const scopes = options.namespaces.length ? options.namespaces : [undefined];

  let queue: WorkQueue<string> | undefined;
  const enqueue = (namespace: string | undefined, name: string | undefined) => {
    if (namespace && name) queue?.add(`${namespace}/${name}`);
  };

  const informerLog = (message: string, fields?: Record<string, unknown>) => log('info', message, fields);
  const routeType = resourceOf(API_VERSION, KIND);
  const routeInformers: Informer<RouteObject & k8s.KubernetesObject>[] = scopes.map((namespace) => {
    const path = resourcePath(routeType, namespace);
    return startInformer<RouteObject & k8s.KubernetesObject>({
      kc: options.kc,
      path,
      list: () => client.list<RouteObject & k8s.KubernetesObject>(path) as Promise<k8s.KubernetesListObject<RouteObject & k8s.KubernetesObject>>,
      onEvent: (_type, object) => enqueue(object.metadata?.namespace, object.metadata?.name),
      resyncMs: options.resyncMs,
      log: informerLog,
    });
  });
  const ownedInformers = scopes.flatMap((namespace) =>
    WATCHED_OWNED.map((kind) => {
      const path = resourcePath(resourceByKind(kind), namespace);
      const labelSelector = `app.kubernetes.io/managed-by=${MANAGED_BY},${ROUTE_LABEL}`;
      return startInformer<k8s.KubernetesObject>({
        kc: options.kc,
        path,
        labelSelector,
        list: () => client.list<k8s.KubernetesObject>(path, labelSelector) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>,
        onEvent: (_type, object) => enqueue(object.metadata?.namespace, object.metadata?.labels?.[ROUTE_LABEL]),
        // The routes' own resync covers periodic work; these only need to wake a route on change.
        resyncMs: 0,
        log: informerLog,
      });
    }),
  );
  const informers = [...routeInformers, ...ownedInformers];
  /**
   * The route as the API server has it now, not as the cache does: the cache may not yet hold the status written by
   * the previous reconcile (a moment ago, or by the previous leader), and transitions are computed against that status
   * (KeyMissing/KeysResolved Events, rollout steps). A stale copy would report them twice. Undefined once deleted.
   */
  const currentRoute = async (key: string): Promise<RouteObject | undefined> => {
    const [namespace, name] = key.split('/') as [string, string];
    return client.get<RouteObject>(resourcePath(routeType, namespace, name)).catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
  };

  /** llmroute_controller_rollout_percent: one series per flag and environment of each route this term reconciled. */
  const flagSeries = new Map<string, Set<string>>();
  const publishFlags = (key: string, flags: NonNullable<Awaited<ReturnType<typeof reconcileRoute>>['flags']>) => {
    const [namespace, route] = key.split('/') as [string, string];
    const series = new Set(flags.map((f) => JSON.stringify({ namespace, route, environment: f.environment, flag: f.flag })));
    for (const f of flags) metrics.rolloutPercent.set({ namespace, route, environment: f.environment, flag: f.flag }, f.percent);
    for (const old of flagSeries.get(key) ?? []) if (!series.has(old)) metrics.rolloutPercent.remove(JSON.parse(old) as Record<string, string>);
    if (series.size) flagSeries.set(key, series);
    else flagSeries.delete(key);
  };

  const reconcile = async (key: string) => {
    const route = await currentRoute(key);
    // Deleted: garbage collection removes what it owned, through the owner references.
    if (!route) {
      publishFlags(key, []);
      return;
    }
    const end = metrics.reconcileDuration.startTimer();
    try {
      const result = await reconcileRoute({ client, events, planner, now: () => new Date(), log, ...(options.gatewayImage ? { image: options.gatewayImage } : {}) }, route);
      end({ outcome: result.outcome });
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
    queue = termQueue;
    metrics.leader.set(1);
    for (const informer of routeInformers) for (const route of informer.list()) enqueue(route.metadata.namespace, route.metadata.name);
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
