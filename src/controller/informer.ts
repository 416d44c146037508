/**
 * A list-watch cache that keeps running. client-node's ListWatch (what `makeInformer` builds) re-lists after 410 Gone
 * and reconnects after timeouts and server-side closes, but any other error (a refused connection, a reset, a failed
 * list, a 5xx) only emits `error` and leaves it stopped; this restarts it with exponential backoff. A restart resumes
 * from the last resourceVersion and does not re-emit `add` for cached objects, so a periodic resync hands every
 * cached object to the (level-triggered) controller again.
 *
 * Objects in the cache come in two shapes: those from `list` are deserialized by client-node's typed API (timestamps
 * are `Date`s), those from the watch are plain JSON (timestamps are strings). Read timestamps with `new Date(x)`.
 *
 * A `transform` reduces every object before it is cached, as controller-runtime's cache transforms do (e.g.
 * TransformStripManagedFields): a cache of thousands of objects holds only what the controller reads.
 */
import * as k8s from '@kubernetes/client-node';
import { exponentialDelay } from './backoff.js';
import { METADATA_ONLY, isNotFound } from './kube-client.js';

export type Log = (message: string, fields?: Record<string, unknown>) => void;

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';

export interface InformerOptions<T extends k8s.KubernetesObject> {
  kc: k8s.KubeConfig;
  /** The collection to watch, e.g. `/api/v1/namespaces/web/configmaps`. */
  path: string;
  /** Lists the same collection with the same selectors: client-node does not derive the list from `path`. */
  list: () => Promise<k8s.KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  onEvent: (type: InformerEvent, obj: T) => void;
  /** How often every cached object is delivered again as `resync`; 0 for never (client-go's convention). */
  resyncMs: number;
  log: Log;
  /** Delay before restarting a stopped watch: `baseMs` doubling to `maxMs`, back to `baseMs` after a good start. */
  restartBackoff?: { baseMs: number; maxMs: number };
  /**
   * Applied to every listed and watched object before it is cached and delivered. It must keep `metadata.name`,
   * `namespace` and `resourceVersion`: the cache is keyed and versioned by them.
   */
  transform?: (obj: T) => T;
  /** Watch PartialObjectMetadata instead of the objects; `list` must ask for metadata too (METADATA_LIST_ONLY). */
  metadataOnly?: boolean;
  /**
   * A collection the API server does not serve (`list` fails with 404: its CRD is not installed) counts as synced and
   * empty, and is listed again with backoff until it is served. For optional kinds: otherwise the informer never syncs.
   */
  emptyUntilServed?: boolean;
}

export interface Informer<T extends k8s.KubernetesObject> {
  /** Cached objects, of one namespace or of all. */
  list(namespace?: string): readonly T[];
  /** A cached object; `namespace` is `undefined` for cluster-scoped ones. */
  get(namespace: string | undefined, name: string): T | undefined;
  /** Whether the first list has been delivered: before that, an absent object may merely not be cached yet. */
  hasSynced(): boolean;
  /** Resolves `true` once synced, `false` if stopped first. */
  waitForSync(): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * Two gaps in client-node's ListWatch, closed at its Watch:
 * - it reconnects on its own (after a server-side close or its 30 s inactivity timeout) without checking whether it
 *   was stopped meanwhile, e.g. during the initial list, so a watch could open after `stop()` and run until the server
 *   closes it. A closed ClosableWatch opens nothing, and never calls `done`, so ListWatch stays idle.
 * - `Watch.watch()` throws, rather than calling `done`, when the credentials cannot be applied (an exec plugin or a
 *   certificate file failing), and ListWatch does not catch that when it reconnects on its own: an unhandled rejection
 *   (a crash, in Node's default mode) and an informer stopped without an `error` event. Passing it to `done` makes it
 *   an ordinary error, which is restarted.
 */
class ClosableWatch<T> extends k8s.Watch {
  closed = false;

  constructor(
    kc: k8s.KubeConfig,
    private readonly transform: ((obj: T) => T) | undefined,
    metadataOnly: boolean,
  ) {
    super(metadataOnly ? withAccept(kc, METADATA_ONLY) : kc);
  }

  override async watch(...args: Parameters<k8s.Watch['watch']>): Promise<AbortController> {
    if (this.closed) return new AbortController();
    const [path, query, callback, done] = args;
    const transform = this.transform;
    // ERROR carries a Status and BOOKMARK only a resourceVersion: neither is an object to cache.
    const deliver: typeof callback = transform ? (phase, obj, watchObj) => callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? obj : transform(obj as T), watchObj) : callback;
    try {
      return await super.watch(path, query, deliver, done);
    } catch (error) {
      done(error);
      return new AbortController();
    }
  }
}

/**
 * The KubeConfig with an Accept header added to every request it authenticates: client-node's Watch takes no headers,
 * but has each request authenticated by its KubeConfig.
 */
function withAccept(kc: k8s.KubeConfig, accept: string): k8s.KubeConfig {
  const authenticate = async (context: Parameters<k8s.KubeConfig['applySecurityAuthentication']>[0]) => {
    await kc.applySecurityAuthentication(context);
    context.setHeaderParam('Accept', accept);
  };
  return Object.assign(Object.create(kc) as k8s.KubeConfig, { applySecurityAuthentication: authenticate });
}

export function startInformer<T extends k8s.KubernetesObject>(options: InformerOptions<T>): Informer<T> {
  const { path, log } = options;
  const { baseMs, maxMs } = options.restartBackoff ?? { baseMs: 1000, maxMs: 60_000 };
  const { transform } = options;
  const watch = new ClosableWatch(options.kc, transform, options.metadataOnly ?? false);
  const list = transform
    ? async () => {
        const listed = await options.list();
        // A metadata-only list of nothing has `items: null`.
        return { ...listed, items: (listed.items ?? []).map(transform) };
      }
    : options.list;
  const cache = new k8s.ListWatch<T>(path, watch, list, false, options.labelSelector, options.fieldSelector);
  let stopped = false;
  let synced = false;
  let failures = 0;
  let attemptFailed = false;
  let restartTimer: NodeJS.Timeout | undefined;
  const syncWaiters: Array<(synced: boolean) => void> = [];

  const deliver = (type: InformerEvent) => (obj: T) => {
    // ListWatch may still deliver what was in flight when it was stopped.
    if (!stopped) options.onEvent(type, obj);
  };
  cache.on('add', deliver('add'));
  cache.on('update', deliver('update'));
  cache.on('delete', deliver('delete'));

  const restartLater = (error: unknown) => {
    attemptFailed = true;
    const delayMs = exponentialDelay(baseMs, maxMs, failures++);
    log('informer stopped; restarting', { path, error: String(error), delayMs });
    restartTimer = setTimeout(() => void start(), delayMs);
    // Never the reason the process stays up; stop() clears it anyway.
    restartTimer.unref();
  };
  // client-node also reports its own stop() here, as an AbortError.
  const markSynced = () => {
    if (synced) return;
    synced = true;
    for (const resolve of syncWaiters.splice(0)) resolve(true);
  };
  cache.on('error', (error: unknown) => {
    if (stopped) return;
    if (options.emptyUntilServed && isNotFound(error)) markSynced();
    restartLater(error);
  });

  // ListWatch.start() resolves once the list is in and the watch is open, or once it has emitted `error`.
  const start = async () => {
    attemptFailed = false;
    try {
      await cache.start();
    } catch (error) {
      // What ListWatch does not turn into `error` events, e.g. onEvent throwing while the list is delivered.
      restartLater(error);
    }
    if (stopped || attemptFailed) return;
    if (failures > 0) log('informer restarted', { path, failures });
    failures = 0;
    markSynced();
  };
  void start();

  const resync =
    options.resyncMs > 0
      ? setInterval(() => {
          if (synced) for (const obj of cache.list()) deliver('resync')(obj);
        }, options.resyncMs)
      : undefined;
  resync?.unref();

  return {
    list: (namespace) => cache.list(namespace),
    get: (namespace, name) => cache.get(name, namespace),
    hasSynced: () => synced,
    waitForSync: () => (synced || stopped ? Promise.resolve(synced) : new Promise((resolve) => syncWaiters.push(resolve))),
    async stop() {
      stopped = true;
      watch.closed = true;
      clearTimeout(restartTimer);
      clearInterval(resync);
      for (const resolve of syncWaiters.splice(0)) resolve(false);
      await cache.stop();
    },
  };
}
