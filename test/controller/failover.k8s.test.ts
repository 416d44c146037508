/**
 * Two (then three) controller replicas in this process on one Lease, with short durations (lease 3 s, renew deadline
 * 2 s, retry 0.5 s), against the real API server. Every replica logs to its own buffer with a monotonic timestamp, so
 * the test can say who reconciled when: a replica may log `reconciled` only between its `started leading` and
 * `stopped leading`, and no two replicas' terms may overlap. A "crash" is `stop()` with `releaseOnStop: false`: the
 * replica stops (caches, workers, lease renewals) without handing the Lease over, so the next one must wait for it
 * to expire, exactly as after a killed pod.
 *
 * The route uses the mock provider with a required key, so the replicas have transitions to report as Events
 * (KeyMissing, KeysResolved, Pruned): a replica working from a stale view would record them twice.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { stringify } from 'yaml';
import { LLMRoute as LLMRouteSchema, type LLMRouteStatus } from '../../src/api/schema.js';
import { startController, type RunningController } from '../../src/controller/controller.js';
import { KubeClient } from '../../src/controller/kube-client.js';
import { OWNED_KINDS, resourceByKind, resourceOf, resourcePath } from '../../src/controller/resources.js';
import { createLogger } from '../../src/log.js';
import { renderEnvironment } from '../../src/render/render.js';
import { createNamespace, kubeConfig, kubectlOk, restartApiServer, state, waitFor } from '../k8s/cluster.js';

jest.setTimeout(90_000);

const TIMING = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };
const LEASE = 'llmroute-controller';
const ROUTE = 'failover';

interface Replica {
  name: string;
  controller: RunningController;
  lines: { at: number; msg: string; fields: Record<string, unknown> }[];
  stopped: boolean;
}

let admin: KubeClient;
let namespace: string;
const replicas: Replica[] = [];

async function startReplica(name: string): Promise<Replica> {
  const lines: Replica['lines'] = [];
  const controller = await startController({
    kc: kubeConfig(),
    namespaces: [namespace],
    workers: 2,
    resyncMs: 30_000,
    metricsPort: 0,
    healthPort: 0,
    leaderElection: { namespace, name: LEASE, identity: name, ...TIMING, releaseOnStop: false },
    log: createLogger({
      level: 'debug',
      write: (line) => {
        const { msg, ...fields } = JSON.parse(line) as { msg: string };
        lines.push({ at: performance.now(), msg, fields });
      },
    }),
  });
  const replica = { name, controller, lines, stopped: false };
  replicas.push(replica);
  return replica;
}

/** Stops a replica without releasing the Lease, as a crash would; returns when it was stopped. */
async function crash(replica: Replica): Promise<number> {
  const at = performance.now();
  replica.stopped = true;
  await replica.controller.stop();
  return at;
}

const leader = () => replicas.filter((r) => !r.stopped && r.controller.isLeader());
const reconciles = (replica: Replica) => replica.lines.filter((l) => l.msg === 'reconciled');
/** When a replica's terms of leadership started and ended, from its own log. */
function terms(replica: Replica): { from: number; to: number }[] {
  const result: { from: number; to: number }[] = [];
  for (const line of replica.lines) {
    if (line.msg === 'started leading') result.push({ from: line.at, to: Infinity });
    const last = result.at(-1);
    if (line.msg === 'stopped leading' && last && last.to === Infinity) last.to = line.at;
  }
  return result;
}

/** One leader at a time, and nobody reconciles outside its own term. */
function expectOneLeaderAtATime(): void {
  const all = replicas.flatMap((replica) => terms(replica).map((term) => ({ ...term, name: replica.name })));
  for (const a of all) for (const b of all) if (a !== b && a.name !== b.name) expect({ a, b, overlap: a.from < b.to && b.from < a.to }).toMatchObject({ overlap: false });
  for (const replica of replicas) {
    const own = terms(replica);
    const outside = reconciles(replica).filter((line) => !own.some((term) => line.at >= term.from && line.at <= term.to));
    expect({ replica: replica.name, reconciledOutsideItsTerm: outside }).toEqual({ replica: replica.name, reconciledOutsideItsTerm: [] });
  }
}

type LiveRoute = { metadata: { generation: number; uid: string }; spec: unknown; status?: LLMRouteStatus };
const getRoute = () => admin.get<LiveRoute>(resourcePath(resourceOf('llmroute.dev/v1alpha1', 'LLMRoute'), namespace, ROUTE));
const condition = (route: LiveRoute, type: string) => route.status?.conditions?.find((c) => c.type === type);
const current = async (predicate: (route: LiveRoute) => boolean) => {
  const route = await getRoute();
  return route.status?.observedGeneration === route.metadata.generation && predicate(route) ? route : undefined;
};

function routeYaml(options: { maxAttempts: number; environments: string[] }): string {
  return stringify({
    apiVersion: 'llmroute.dev/v1alpha1',
    kind: 'LLMRoute',
    metadata: { name: ROUTE, namespace },
    spec: {
      auth: 'none',
      providers: [{ name: 'mock', type: 'mock', keyRequired: true }],
      models: [{ name: 'chat', pin: 'mock-2025-01-01', fallback: [{ provider: 'mock' }] }],
      retry: { maxAttempts: options.maxAttempts },
      environments: options.environments.map((name) => ({ name, keys: { mock: [{ secretRef: { name: 'mock-key', key: 'apiKey' } }] }, gateway: { replicas: 1 } })),
    },
  });
}
const apply = (yaml: string) => kubectlOk(['apply', '--server-side', '--field-manager=test-user', '-f', '-'], { input: yaml });

async function owned(): Promise<string[]> {
  const names: string[] = [];
  for (const kind of OWNED_KINDS) {
    const { items } = await admin.list<{ metadata: { name: string } }>(resourcePath(resourceByKind(kind), namespace), `llmroute.dev/route=${ROUTE}`);
    names.push(...items.map((i) => `${kind}/${i.metadata.name}`));
  }
  return names.sort();
}

async function rendered(): Promise<string[]> {
  const live = await getRoute();
  const route = LLMRouteSchema.parse({ apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', metadata: { name: ROUTE, namespace }, spec: live.spec });
  const owner = { apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', name: ROUTE, uid: live.metadata.uid };
  return route.spec.environments.flatMap((e) => renderEnvironment({ route, environment: e.name, namespace, owner }).objects.map((o) => `${o.kind}/${o.metadata.name}`)).sort();
}

const maxAttempts = async (environment: string) =>
  JSON.parse((await admin.get<{ data: Record<string, string> }>(resourcePath(resourceByKind('ConfigMap'), namespace, `${ROUTE}-${environment}`))).data['gateway.json']!).retry.maxAttempts as number;

/** The route's Events, counted by reason (with `count`, in case anything aggregated them). */
async function eventsByReason(): Promise<Record<string, number>> {
  const { items } = await admin.list<{ reason: string; count?: number; involvedObject: { name: string } }>(resourcePath(resourceByKind('Event'), namespace));
  const counts: Record<string, number> = {};
  for (const event of items.filter((e) => e.involvedObject.name === ROUTE)) counts[event.reason] = (counts[event.reason] ?? 0) + (event.count ?? 1);
  return counts;
}

const leaseHolder = async () => (await admin.get<{ spec?: { holderIdentity?: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${LEASE}`)).spec?.holderIdentity;

/**
 * The takeover, from the crash to the successor's `started leading`: not before the lease expired (the last renewal
 * was at most a retry period before the crash), and within the lease duration plus the successor's polling. The upper
 * bound holds only if no other test file restarted the API server meanwhile (they share it); the lower one always.
 */
function expectTakeoverWithinLease(successor: Replica, crashedAt: number, restartsBefore: number): number {
  const started = terms(successor).find((term) => term.from > crashedAt)!.from;
  const takeover = started - crashedAt;
  expect(takeover).toBeGreaterThan(TIMING.leaseDurationMs - TIMING.retryPeriodMs - 100);
  if (state().apiServerRestarts === restartsBefore) expect(takeover).toBeLessThan(TIMING.leaseDurationMs + 2 * TIMING.retryPeriodMs + 500);
  return takeover;
}

beforeAll(async () => {
  admin = await KubeClient.create(kubeConfig());
  namespace = await createNamespace('failover');
});

afterAll(async () => {
  await Promise.all(replicas.filter((r) => !r.stopped).map((r) => crash(r)));
  admin?.close();
});

describe('controller failover with leader election', () => {
  it('exactly one of two replicas reconciles; the other writes nothing', async () => {
    const a = await startReplica('a');
    const b = await startReplica('b');
    await waitFor(() => leader().length === 1, { message: 'a leader' });
    await apply(routeYaml({ maxAttempts: 2, environments: ['dev', 'prod'] }));
    const held = await waitFor(() => current((r) => condition(r, 'KeysResolved')?.status === 'False'), { message: 'KeysResolved=False' });
    expect(condition(held, 'Ready')).toMatchObject({ status: 'False', reason: 'KeyMissing' });
    // Several renewals later: still the same leader, and the follower has not reconciled once.
    await new Promise((resolve) => setTimeout(resolve, TIMING.leaseDurationMs));
    const [first] = leader();
    const follower = first === a ? b : a;
    expect(await leaseHolder()).toBe(first!.name);
    expect(reconciles(first!).length).toBeGreaterThan(0);
    expect(reconciles(follower)).toEqual([]);
    expect(terms(follower)).toEqual([]);
    expect(await eventsByReason()).toEqual({ KeyMissing: 1 });
    expectOneLeaderAtATime();
  });

  it('a crashed leader (lease not released) is replaced once the lease expires, and the successor reconciles what changed meanwhile', async () => {
    const [crashing] = leader();
    const successor = replicas.find((r) => r !== crashing)!;
    const restarts = state().apiServerRestarts;
    const crashedAt = await crash(crashing!);
    expect(await leaseHolder()).toBe(crashing!.name);
    // While nobody leads: the key appears and the route changes.
    await apply(stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'mock-key', namespace }, stringData: { apiKey: 'mock-key-value' } }));
    await apply(routeYaml({ maxAttempts: 5, environments: ['dev', 'prod'] }));

    await waitFor(() => successor.controller.isLeader(), { timeoutMs: 10_000, intervalMs: 20, message: 'the successor to lead' });
    expectTakeoverWithinLease(successor, crashedAt, restarts);
    expect(await leaseHolder()).toBe(successor.name);
    await waitFor(async () => (await current((r) => condition(r, 'Ready')?.status === 'True')) && (await maxAttempts('dev')) === 5 && (await maxAttempts('prod')) === 5, {
      message: 'the change reconciled by the successor',
    });
    // Nothing duplicated: exactly what render gives, each transition reported once.
    expect(await owned()).toEqual(await rendered());
    expect(await eventsByReason()).toEqual({ KeyMissing: 1, KeysResolved: 1 });
    expectOneLeaderAtATime();
  });

  it('through an API server restart with two replicas running, a change is reconciled and both remain candidates', async () => {
    // The crashed replica's pod comes back (a new name, as a new pod would have).
    await startReplica('c');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const [before] = leader();
    // Down for longer than the renew deadline: the leader cannot renew and must step down.
    const down = performance.now();
    await restartApiServer({ downMs: TIMING.leaseDurationMs });
    expect(terms(before!).some((term) => term.to > down && term.to < performance.now())).toBe(true);
    await apply(routeYaml({ maxAttempts: 5, environments: ['dev'] }));
    await waitFor(async () => (await current((r) => condition(r, 'Ready')?.status === 'True')) && JSON.stringify(await owned()) === JSON.stringify(await rendered()), {
      timeoutMs: 30_000,
      message: 'prod pruned after the API server restart',
    });
    expect(await eventsByReason()).toEqual({ KeyMissing: 1, KeysResolved: 1, Pruned: 1 });

    // Whoever leads now, the other replica takes over when it crashes: losing the lease in the outage must not
    // have turned a replica into a bystander that never campaigns again.
    const [now] = await waitFor(() => (leader().length === 1 ? leader() : undefined), { message: 'a leader after the restart' });
    const other = replicas.find((r) => !r.stopped && r !== now)!;
    const restartsBefore = state().apiServerRestarts;
    const crashedAt = await crash(now!);
    await apply(routeYaml({ maxAttempts: 7, environments: ['dev'] }));
    await waitFor(() => other.controller.isLeader(), { timeoutMs: 10_000, intervalMs: 20, message: `replica ${other.name} to take over from ${now!.name}` });
    expectTakeoverWithinLease(other, crashedAt, restartsBefore);
    await waitFor(async () => (await current((r) => condition(r, 'Ready')?.status === 'True')) && (await maxAttempts('dev')) === 7, { message: 'the last change reconciled' });
    expect(await owned()).toEqual(await rendered());
    expect(await eventsByReason()).toEqual({ KeyMissing: 1, KeysResolved: 1, Pruned: 1 });
    expectOneLeaderAtATime();
  });
});
