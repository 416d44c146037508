/**
 * startInformer against a real kube-apiserver (LLMROUTE_TEST_KUBECONFIG). Connection failures are made with a TCP
 * proxy between the informer and the API server: resetting its connections and refusing new ones is what a client
 * sees while an API server restarts, and it breaks client-node's ListWatch the way production does (a non-410 error).
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import * as net from 'node:net';
import { startInformer, type Informer, type InformerEvent } from '../../src/controller/informer.js';
import { KubeClient } from '../../src/controller/kube-client.js';
import { kubeConfig, pollUntil, withServer } from '../k8s/cluster.js';

/** A TCP proxy to the API server (TLS passes through untouched). */
async function startProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    track(client);
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number) => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  await listen(0);
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    /** Resets every connection and refuses new ones. */
    cut() {
      server.close();
      for (const socket of sockets) socket.resetAndDestroy();
    },
    resume: () => listen(port),
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

const LABEL = 'llmroute.dev/test';

// jest's testTimeout is a global option: in a project's config (jest.config.js) it is ignored.
jest.setTimeout(30_000);

let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let namespace: string;

beforeAll(async () => {
  kc = kubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  namespace = `informer-${Date.now().toString(36)}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
});

afterAll(async () => {
  await core.deleteNamespace({ name: namespace });
});

/** A ConfigMap informer on `namespace`, labelled `LABEL=<group>`, recording what it delivers and logs. */
function configMapInformer(
  group: string,
  options: { kc?: k8s.KubeConfig; resyncMs?: number; restartBackoff?: { baseMs: number; maxMs: number }; listDelayMs?: number } = {},
) {
  const client = (options.kc ?? kc).makeApiClient(k8s.CoreV1Api);
  const labelSelector = `${LABEL}=${group}`;
  const events: Array<{ type: InformerEvent; name: string; data?: Record<string, string> }> = [];
  const logs: Array<{ message: string; fields?: Record<string, unknown> }> = [];
  const informer: Informer<k8s.V1ConfigMap> = startInformer<k8s.V1ConfigMap>({
    kc: options.kc ?? kc,
    path: `/api/v1/namespaces/${namespace}/configmaps`,
    list: async () => {
      await new Promise((resolve) => setTimeout(resolve, options.listDelayMs ?? 0));
      return client.listNamespacedConfigMap({ namespace, labelSelector });
    },
    labelSelector,
    onEvent: (type, obj) => events.push({ type, name: obj.metadata!.name!, data: obj.data }),
    resyncMs: options.resyncMs ?? 0,
    log: (message, fields) => logs.push({ message, fields }),
    restartBackoff: options.restartBackoff,
  });
  const seen = (type: InformerEvent, name: string) => events.some((event) => event.type === type && event.name === name);
  return { informer, events, logs, seen };
}

const createConfigMap = (name: string, group: string | undefined, data: Record<string, string> = {}) =>
  core.createNamespacedConfigMap({ namespace, body: { metadata: { name, labels: group ? { [LABEL]: group } : {} }, data } });

describe('startInformer', () => {
  it('lists, then delivers add, update and delete for matching objects only (and no resync at resyncMs 0), and caches them', async () => {
    await createConfigMap('events-before', 'events');
    const { informer, events, seen } = configMapInformer('events');
    try {
      expect(await informer.waitForSync()).toBe(true);
      expect(informer.hasSynced()).toBe(true);
      expect(events).toEqual([{ type: 'add', name: 'events-before', data: undefined }]);

      await createConfigMap('events-other', undefined);
      await createConfigMap('events-cm', 'events', { v: '1' });
      await pollUntil('add', () => seen('add', 'events-cm'));
      await core.patchNamespacedConfigMap(
        { namespace, name: 'events-cm', body: { data: { v: '2' } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      await pollUntil('update', () => seen('update', 'events-cm'));
      expect(informer.get(namespace, 'events-cm')?.data).toEqual({ v: '2' });
      await core.deleteNamespacedConfigMap({ namespace, name: 'events-cm' });
      await pollUntil('delete', () => seen('delete', 'events-cm'));

      // Watch events arrive in resourceVersion order, so the unlabelled one would have come before these.
      expect(events).toEqual([
        { type: 'add', name: 'events-before', data: undefined },
        { type: 'add', name: 'events-cm', data: { v: '1' } },
        { type: 'update', name: 'events-cm', data: { v: '2' } },
        { type: 'delete', name: 'events-cm', data: { v: '2' } },
      ]);
      expect(informer.get(namespace, 'events-cm')).toBeUndefined();
      expect(informer.list().map((cm) => cm.metadata?.name)).toEqual(['events-before']);
      expect(informer.list('elsewhere')).toEqual([]);
    } finally {
      await informer.stop();
    }
  });

  it('delivers every cached object again as resync, periodically', async () => {
    await createConfigMap('resync-a', 'resync');
    await createConfigMap('resync-b', 'resync');
    const { informer, events, seen } = configMapInformer('resync', { resyncMs: 300 });
    try {
      await informer.waitForSync();
      await pollUntil('resync of both', () => seen('resync', 'resync-a') && seen('resync', 'resync-b'));
      await core.deleteNamespacedConfigMap({ namespace, name: 'resync-b' });
      await pollUntil('delete', () => seen('delete', 'resync-b'));
      events.length = 0;
      await pollUntil('two more resyncs', () => events.filter((event) => event.type === 'resync').length >= 2);
      expect(new Set(events.map((event) => `${event.type} ${event.name}`))).toEqual(new Set(['resync resync-a']));
    } finally {
      await informer.stop();
    }
  });

  it('restarts with doubling delays while the API server is unreachable, resumes where it was, and resets the backoff', async () => {
    const proxy = await startProxy(new URL(kc.getCurrentCluster()!.server));
    const { informer, events, logs, seen } = configMapInformer('outage', {
      kc: withServer(kc, proxy.url),
      restartBackoff: { baseMs: 100, maxMs: 400 },
    });
    const restartDelays = () => logs.filter((log) => log.message === 'informer stopped; restarting').map((log) => log.fields?.delayMs);
    try {
      await createConfigMap('outage-before', 'outage');
      await informer.waitForSync();
      await pollUntil('initial add', () => seen('add', 'outage-before'));

      proxy.cut();
      await createConfigMap('outage-during', 'outage');
      await pollUntil('four failed restarts', () => restartDelays().length >= 4);
      expect(restartDelays().slice(0, 4)).toEqual([100, 200, 400, 400]);
      expect(seen('add', 'outage-during')).toBe(false);

      await proxy.resume();
      await pollUntil('the object created during the outage', () => seen('add', 'outage-during'));
      await pollUntil('restart logged', () => logs.some((log) => log.message === 'informer restarted'));
      // The restart resumed from the last resourceVersion: nothing already cached was delivered again.
      expect(events.filter((event) => event.name === 'outage-before').map((event) => event.type)).toEqual(['add']);

      const before = restartDelays().length;
      proxy.cut();
      await pollUntil('a failed restart', () => restartDelays().length > before);
      expect(restartDelays()[before]).toBe(100);
      await proxy.resume();
      await createConfigMap('outage-after', 'outage');
      await pollUntil('an object created after the second outage', () => seen('add', 'outage-after'));
    } finally {
      await informer.stop();
      proxy.close();
    }
  });

  it('keeps trying when the first list fails, and waitForSync gives up when stopped', async () => {
    const proxy = await startProxy(new URL(kc.getCurrentCluster()!.server));
    proxy.cut();
    const { informer, logs } = configMapInformer('never', { kc: withServer(kc, proxy.url), restartBackoff: { baseMs: 50, maxMs: 50 } });
    try {
      const synced = informer.waitForSync();
      await pollUntil('three failed starts', () => logs.filter((log) => log.message === 'informer stopped; restarting').length >= 3);
      expect(informer.hasSynced()).toBe(false);
      await informer.stop();
      expect(await synced).toBe(false);
      const failures = logs.length;
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(logs.length).toBe(failures); // no restart after stop
    } finally {
      await informer.stop();
      proxy.close();
    }
  });

  it('counts a collection the API server does not serve as synced and empty when asked to, and keeps listing it', async () => {
    const client = await KubeClient.create(kc);
    const path = `/apis/example.invalid/v1/namespaces/${namespace}/widgets`;
    const logs: string[] = [];
    const start = (emptyUntilServed: boolean) =>
      startInformer<k8s.KubernetesObject>({ kc, path, list: () => client.list(path) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>, onEvent: () => undefined, resyncMs: 0, log: (message) => logs.push(message), restartBackoff: { baseMs: 50, maxMs: 50 }, emptyUntilServed });
    const optional = start(true);
    const required = start(false);
    try {
      expect(await optional.waitForSync()).toBe(true);
      expect(optional.list()).toEqual([]);
      await pollUntil('more attempts to list it', () => logs.filter((message) => message === 'informer stopped; restarting').length >= 6);
      expect(required.hasSynced()).toBe(false);
    } finally {
      await optional.stop();
      await required.stop();
      client.close();
    }
  });

  it('delivers nothing after stop', async () => {
    const { informer, events } = configMapInformer('stopped');
    await informer.waitForSync();
    await informer.stop();
    await createConfigMap('stopped-cm', 'stopped');
    const marker = configMapInformer('stopped');
    try {
      await pollUntil('a fresh informer to see it', () => marker.seen('add', 'stopped-cm'));
      expect(events).toEqual([]);
    } finally {
      await marker.informer.stop();
    }
  });

  it('survives credentials failing when a quiet watch reconnects, and recovers when they work again', async () => {
    // client-node's Watch gives up on a watch after 30 s without data and ListWatch reconnects on its own: with no
    // events, that is when the credentials are applied again.
    let failing = false;
    const failingKc = kubeConfig();
    failingKc.addAuthenticator({
      isAuthProvider: () => true,
      applyAuthentication: async () => {
        if (failing) throw new Error('credentials unavailable');
      },
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const { informer, logs, seen } = configMapInformer('quiet', { kc: failingKc, restartBackoff: { baseMs: 100, maxMs: 100 } });
    try {
      await informer.waitForSync();
      failing = true;
      await pollUntil('a restart', () => logs.some((log) => log.message === 'informer stopped; restarting'), 40_000);
      expect(logs[0]?.fields?.error).toBe('Error: credentials unavailable');
      failing = false;
      await createConfigMap('quiet-after', 'quiet');
      await pollUntil('an object created once the credentials work', () => seen('add', 'quiet-after'));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await informer.stop();
    }
  }, 60_000);

  it('stopped while listing, delivers nothing and opens no watch afterwards', async () => {
    await createConfigMap('listing-before', 'listing');
    const { informer, events } = configMapInformer('listing', { listDelayMs: 300 });
    await informer.stop();
    await new Promise((resolve) => setTimeout(resolve, 600)); // the list returns, into the cache
    await createConfigMap('listing-after', 'listing');
    const marker = configMapInformer('listing');
    try {
      await pollUntil('a fresh informer to see it', () => marker.seen('add', 'listing-after'));
      expect(events).toEqual([]);
      // A watch opened after stop() would have put it into the (still readable) cache.
      expect(informer.list().map((cm) => cm.metadata?.name)).toEqual(['listing-before']);
    } finally {
      await marker.informer.stop();
    }
  });
});
