/**
 * LeaderElector against a real kube-apiserver (LLMROUTE_TEST_KUBECONFIG), with short durations: lease 3 s, renew
 * deadline 2 s, retry 0.5 s. A network partition of one replica is made with a TCP proxy that stops passing bytes.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import * as net from 'node:net';
import { LeaderElector, type LeaderElectorOptions } from '../../src/controller/leader-election.js';
import { kubeConfig, pollUntil, withServer } from '../k8s/cluster.js';

/** A TCP proxy to the API server (TLS passes through) that can stop passing bytes, as a network partition does. */
async function startProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  let partitioned = false;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => undefined);
    if (partitioned) return; // accepted, never answered
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(upstream);
    upstream.on('error', () => undefined);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    partition() {
      partitioned = true;
      for (const socket of sockets) {
        socket.unpipe();
        socket.pause();
      }
    },
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

const TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

// jest's testTimeout is a global option: in a project's config (jest.config.js) it is ignored.
jest.setTimeout(30_000);

let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let coordination: k8s.CoordinationV1Api;
let namespace: string;

beforeAll(async () => {
  kc = kubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  coordination = kc.makeApiClient(k8s.CoordinationV1Api);
  namespace = `leader-${Date.now().toString(36)}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
});

afterAll(async () => {
  await core.deleteNamespace({ name: namespace });
});

type Happening = 'started' | 'aborted' | 'finished' | 'stopped';

/** Replicas on one lease, with a shared timeline of what happened to whom. */
function replicas(lease: string) {
  const timeline: Array<{ at: number; who: string; what: Happening }> = [];
  const electors: LeaderElector[] = [];
  const record = (who: string, what: Happening) => timeline.push({ at: performance.now(), who, what });
  const start = (identity: string, options: Partial<LeaderElectorOptions> & { finishMs?: number } = {}) => {
    const elector = new LeaderElector({
      kc,
      namespace,
      name: lease,
      identity,
      ...TIMING,
      onStartedLeading: async (signal) => {
        record(identity, 'started');
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        record(identity, 'aborted');
        // Winding down: the lease must not be released before this is over.
        await new Promise((resolve) => setTimeout(resolve, options.finishMs ?? 0));
        record(identity, 'finished');
      },
      onStoppedLeading: () => record(identity, 'stopped'),
      log: () => undefined,
      ...options,
    });
    electors.push(elector);
    void elector.run();
    return elector;
  };
  const when = (who: string, what: Happening) => timeline.find((event) => event.who === who && event.what === what)?.at;
  /** The most replicas that were leading at the same time: from `started` to `finished`. */
  const mostLeadersAtOnce = () => {
    let leaders = 0;
    let most = 0;
    for (const { what } of timeline) {
      if (what === 'started') most = Math.max(most, ++leaders);
      if (what === 'finished') leaders--;
    }
    return most;
  };
  const stopAll = () => Promise.all(electors.map((elector) => elector.stop()));
  return { timeline, start, when, mostLeadersAtOnce, stopAll };
}

const readLease = (name: string) => coordination.readNamespacedLease({ namespace, name });

describe('LeaderElector', () => {
  it('elects exactly one of two, and a graceful stop hands over within a retry period, after winding down', async () => {
    const { start, when, timeline, mostLeadersAtOnce, stopAll } = replicas('graceful');
    try {
      const a = start('a', { finishMs: 300 });
      const b = start('b', { finishMs: 300 });
      const first = await pollUntil('a leader', () => (a.isLeader() ? 'a' : b.isLeader() ? 'b' : false));
      const [leader, other] = first === 'a' ? [a, b] : [b, a];
      const otherName = first === 'a' ? 'b' : 'a';

      // Several renewals later, still one leader, and the Lease says who.
      await new Promise((resolve) => setTimeout(resolve, 2 * TIMING.leaseDurationMs));
      expect(timeline.map(({ who, what }) => `${who} ${what}`)).toEqual([`${first} started`]);
      const lease = await readLease('graceful');
      expect(lease.spec?.holderIdentity).toBe(first);
      expect(lease.spec?.leaseDurationSeconds).toBe(3);
      // MicroTime on the wire: six fractional digits (and read back as a string, whatever the types say).
      expect(String(lease.spec?.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      expect(lease.spec?.leaseTransitions).toBe(0);

      const stopping = performance.now();
      await leader.stop();
      expect(leader.isLeader()).toBe(false);
      await pollUntil('the other to lead', () => other.isLeader());
      expect(when(otherName, 'started')! - stopping).toBeLessThan(300 + TIMING.retryPeriodMs + 500);
      expect(when(otherName, 'started')!).toBeGreaterThan(when(first, 'finished')!);
      expect(timeline.map(({ who, what }) => `${who} ${what}`)).toEqual([
        `${first} started`,
        `${first} aborted`,
        `${first} finished`,
        `${first} stopped`,
        `${otherName} started`,
      ]);
      expect(mostLeadersAtOnce()).toBe(1);
      expect((await readLease('graceful')).spec).toMatchObject({ holderIdentity: otherName, leaseTransitions: 1 });
    } finally {
      await stopAll();
    }
  });

  it('replaces a leader that stopped without releasing only once the lease has expired', async () => {
    const { start, when, mostLeadersAtOnce, stopAll } = replicas('expiry');
    try {
      const crashing = start('crashing', { releaseOnStop: false });
      await pollUntil('the first to lead', () => crashing.isLeader());
      const successor = start('successor');
      await new Promise((resolve) => setTimeout(resolve, TIMING.leaseDurationMs));
      expect(successor.isLeader()).toBe(false);

      const crashed = performance.now();
      await crashing.stop();
      expect((await readLease('expiry')).spec?.holderIdentity).toBe('crashing');
      await pollUntil('the successor to lead', () => successor.isLeader());
      const takeover = when('successor', 'started')! - crashed;
      // The last renewal was at most a retry period before the crash; the successor polls every retry period.
      expect(takeover).toBeGreaterThan(TIMING.leaseDurationMs - TIMING.retryPeriodMs - 100);
      expect(takeover).toBeLessThan(TIMING.leaseDurationMs + 2 * TIMING.retryPeriodMs + 500);
      expect(mostLeadersAtOnce()).toBe(1);
    } finally {
      await stopAll();
    }
  });

  it('makes a partitioned leader stop leading within the renew deadline, before another takes over', async () => {
    const proxy = await startProxy(new URL(kc.getCurrentCluster()!.server));
    const { start, when, stopAll } = replicas('partition');
    try {
      const partitioned = start('partitioned', { kc: withServer(kc, proxy.url) });
      await pollUntil('the first to lead', () => partitioned.isLeader());
      start('successor');
      await new Promise((resolve) => setTimeout(resolve, TIMING.leaseDurationMs));

      const cut = performance.now();
      proxy.partition(); // requests now hang: only the per-request deadline ends them
      await pollUntil('the successor to lead', () => when('successor', 'started'));
      const stepDown = when('partitioned', 'aborted')! - cut;
      expect(stepDown).toBeLessThanOrEqual(TIMING.renewDeadlineMs + 200);
      expect(when('partitioned', 'stopped')!).toBeLessThan(when('successor', 'started')!);
      expect(partitioned.isLeader()).toBe(false);
    } finally {
      proxy.close();
      await stopAll();
    }
  });

  it('rejects timings that cannot work', () => {
    const options = { kc, namespace, name: 'x', identity: 'x', onStartedLeading: () => undefined, onStoppedLeading: () => undefined, log: () => undefined };
    expect(() => new LeaderElector({ ...options, leaseDurationMs: 2000, renewDeadlineMs: 2000 })).toThrow(/leaseDuration > renewDeadline/);
    expect(() => new LeaderElector({ ...options, renewDeadlineMs: 1000, retryPeriodMs: 1000 })).toThrow(/renewDeadline > retryPeriod/);
  });
});
