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
import { KubeClient } from './kube-client.js';
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
  leaderElection?: { namespace: string; name: string; identity?: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
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
  const cachedRoute = (key: string): RouteObject | undefined => {
    const [namespace, name] = key.split('/') as [string, string];
    for (const informer of routeInformers) {
      const found = informer.get(namespace, name);
      if (found) return found;
    }
    return undefined;
  };

  const reconcile = async (key: string) => {
    const route = cachedRoute(key);
    // Deleted: garbage collection removes what it owned, through the owner references.
    if (!route) return;
    const end = metrics.reconcileDuration.startTimer();
    try {
      const result = await reconcileRoute({ client, events, planner, now: () => new Date(), log, ...(options.gatewayImage ? { image: options.gatewayImage } : {}) }, route);
      end({ outcome: result.outcome });
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
    if (queue === termQueue) queue = undefined;
  };

  const synced = () => informers.every((i) => i.hasSynced());
  const servers = [await startServer(options.healthPort, { live: () => true, ready: synced }, metrics.registry)];
  if (options.metricsPort !== options.healthPort) servers.push(await startServer(options.metricsPort, { live: () => true, ready: synced }, metrics.registry));

  let elector: LeaderElector | undefined;
  let standalone: AbortController | undefined;
  let leading: Promise<void> | undefined;
  if (options.leaderElection) {
    elector = new LeaderElector({
      kc: options.kc,
      ...options.leaderElection,
      identity: host,
      releaseOnStop: true,
      onStartedLeading: (signal) => lead(signal),
      onStoppedLeading: () => log('info', 'stopped leading'),
      log: (message, fields) => log('info', message, fields),
    });
    void elector.run();
  } else {
    standalone = new AbortController();
    leading = lead(standalone.signal);
  }

  return {
    isLeader: () => (elector ? elector.isLeader() : true),
    async stop() {
      if (elector) await elector.stop();
      if (standalone) {
        standalone.abort();
        await leading;
      }
      await Promise.all(informers.map((i) => i.stop()));
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
      client.close();
    },
  };
}
