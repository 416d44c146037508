/**
 * The controller at scale, against the real API server harness (test/k8s/harness.ts: etcd and kube-apiserver on
 * loopback, our CRDs and the third-party fixture CRDs installed). kube-controller-manager is left out: nothing here
 * needs garbage collection, and on a 2-core machine its pods-for-every-Deployment work would be measured instead of
 * the controller's.
 *
 * 1. N LLMRoutes (two environments each, keys from Secrets) are created at once; the time until every one reports
 *    Ready=True for its current generation (followed with a watch: listing every route twice a second would cost the
 *    API server more than the controller does), the controller's resident memory, and its requests to the API server
 *    (counted inside the controller process) per route.
 * 2. One route at a time is changed; the time until its ConfigMap holds the change (p50, p99).
 * 3. `cdk8s synth` of 100 routes.
 *
 * While the routes are created, the CPU time of the controller, kube-apiserver and etcd is read from /proc, to show
 * which of them is the bottleneck. Development switches (environment variables, since they are not part of a
 * published run): LLMROUTE_BENCH_CONTROLLER_PROFILE=1 also profiles the controller (`node --cpu-prof`) and
 * kube-apiserver (its pprof endpoint, summarised with `go tool pprof` when Go is installed) and logs the hottest
 * functions, keeping the profiles in the work directory; LLMROUTE_BENCH_CONTROLLER_WORKERS=N runs the controller with
 * N workers instead of the CLI's default.
 */
import { execFile, spawn } from 'node:child_process';
import https from 'node:https';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { API_VERSION, KIND } from '../../src/api/group.js';
import { startInformer, type Informer } from '../../src/controller/informer.js';
import { KubeClient } from '../../src/controller/kube-client.js';
import { resourceByKind, resourceOf, resourcePath } from '../../src/controller/resources.js';
import { readState, startControlPlane, type ControlPlane } from '../../test/k8s/harness.js';
import { buildLlmroute } from './build.js';
import { analyse } from './profile.js';
import { cpuMsOf, machineBusyMs, rssMB, startChild, type Child } from './proc.js';
import type { ControllerResult } from './results.js';
import { MODEL } from './shared.js';
import { round, summarize } from './stats.js';

const NAMESPACE = 'bench-scale';
/** A change whose ConfigMap has not followed after this long is counted as timed out. */
const CHANGE_TIMEOUT_MS = 20_000;
/** How long to wait, after every route is Ready, for the controller to stop sending requests. */
const SETTLE_MAX_MS = 45_000;
/**
 * The heap Node.js sizes for the controller in the chart's pod: under its memory limit (384 MiB) Node.js 20 and later
 * give V8 its smallest old space, 256 MB. Without the flag V8 sizes the heap from this machine's memory and collects
 * later, so the resident memory measured would not be the pod's (1,000 routes: a peak about 60 MB higher).
 */
const CONTROLLER_HEAP = '--max-old-space-size=256';
const PROFILE = process.env.LLMROUTE_BENCH_CONTROLLER_PROFILE === '1';
const WORKERS = process.env.LLMROUTE_BENCH_CONTROLLER_WORKERS;
/** How much of the busy phase kube-apiserver's CPU profile covers (it must be asked for a duration up front). */
const API_SERVER_PROFILE_S = 30;

function route(name: string, maxAttempts = 3) {
  const keys = { openai: [{ secretRef: { name: 'provider-keys', key: 'openai' } }], anthropic: [{ secretRef: { name: 'provider-keys', key: 'anthropic' } }] };
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, namespace: NAMESPACE },
    spec: {
      providers: [
        { name: 'openai', type: 'openai' },
        { name: 'anthropic', type: 'anthropic' },
      ],
      models: [{ name: 'chat', pin: MODEL, maxOutputTokens: 800, fallback: [{ provider: 'openai' }, { provider: 'anthropic', model: 'claude-sonnet-4-20250514' }] }],
      retry: { maxAttempts, baseDelayMs: 250, maxDelayMs: 8000, budgetPercent: 20 },
      clients: [{ name: 'web', tokenSecretRef: { name: 'client-tokens', key: 'web' }, budget: { daily: 20 } }],
      environments: [
        { name: 'staging', keys, budget: { daily: 20, monthly: 300 }, gateway: { replicas: 1 } },
        { name: 'production', keys, budget: { daily: 100, monthly: 1500 }, gateway: { replicas: 2, redis: { urlSecretRef: { name: 'budget-redis', key: 'url' } } } },
      ],
    },
  };
}

interface LiveRoute {
  metadata: { name: string; namespace?: string; generation?: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
}

const isReady = (r: LiveRoute) => r.status?.observedGeneration === r.metadata.generation && r.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** Runs `fn` over `items` with at most `limit` in flight. */
async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

interface Stats {
  total: number;
  byVerb: Record<string, number>;
  byResource: Record<string, number>;
}

async function stats(url: string): Promise<Stats> {
  return (await (await fetch(url)).json()) as Stats;
}

/** `after - before` per key, without the zeros. */
function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).flatMap(([key, n]) => (n - (before[key] ?? 0) ? [[key, n - (before[key] ?? 0)]] : [])));
}

/** CPU milliseconds used so far by the controller, kube-apiserver, etcd, and the whole machine. */
function cpuNow(controller: number, plane: ControlPlane): Record<string, number> {
  const { processes } = readState(plane.statePath);
  return { controller: cpuMsOf(controller), 'kube-apiserver': cpuMsOf(processes['kube-apiserver']?.pid ?? 0), etcd: cpuMsOf(processes.etcd?.pid ?? 0), machine: machineBusyMs() };
}

/** kube-apiserver's CPU profile (pprof format) over the next `seconds`, written to `file`. */
async function profileApiServer(plane: ControlPlane, seconds: number, file: string): Promise<void> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  const options: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const body = await new Promise<Buffer>((resolve, reject) => {
    https
      .get(`${plane.server}/debug/pprof/profile?seconds=${seconds}`, { ca: options.ca, cert: options.cert, key: options.key }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => (response.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`pprof answered ${response.statusCode}`))));
      })
      .on('error', reject);
  });
  await writeFile(file, body);
}

/** `go tool pprof -top` of a profile, or why not. */
function pprofTop(binary: string, file: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('go', ['tool', 'pprof', '-top', '-nodecount=30', binary, file], { maxBuffer: 1 << 22 }, (error, stdout, stderr) => resolve(error ? `go tool pprof failed (${error.message.split('\n')[0]}); the profile is ${file}` : stdout || stderr));
  });
}

/** The controller's .cpuprofile (written when it exits), summarised like the gateway's. */
async function controllerProfile(dir: string): Promise<string> {
  const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return `no .cpuprofile in ${dir}`;
  const summary = analyse(JSON.parse(await readFile(join(dir, file), 'utf8')), 25);
  const line = (e: { name: string; where: string; selfMs: number; selfPct: number; totalMs?: number }) => `  ${e.selfMs.toFixed(0).padStart(7)} ms ${e.selfPct.toFixed(1).padStart(5)}%${e.totalMs === undefined ? '' : ` (total ${e.totalMs.toFixed(0)} ms)`} ${e.name} ${e.where}`;
  return [
    `busy ${summary.busyMs} ms; by area:`,
    ...summary.byArea.map((a) => `  ${a.selfMs.toFixed(0).padStart(7)} ms ${a.selfPct.toFixed(1).padStart(5)}% ${a.area}`),
    'top self:',
    ...summary.topSelf.map(line),
    'llmroute functions by total:',
    ...summary.topLlmrouteTotal.map(line),
    `(${join(dir, file)})`,
  ].join('\n');
}

async function synth100(repo: string, work: string, log: (line: string) => void): Promise<{ seconds?: number; note?: string }> {
  const dir = join(work, 'synth-routes');
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < 100; i++) await writeFile(join(dir, `route-${i}.yaml`), stringify({ ...route(`synth-${i}`), metadata: { name: `synth-${i}`, namespace: 'ai' } }));
  const cli = join(repo, 'node_modules', '.bin', 'cdk8s');
  const t0 = performance.now();
  const outcome = await new Promise<{ code: number | null; text: string }>((resolve) => {
    let text = '';
    const child = spawn(cli, ['synth', '--output', join(work, 'synth-out'), '--check-upgrade', 'false'], { cwd: repo, env: { ...process.env, LLMROUTE_ROUTES: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => (text = (text + chunk.toString()).slice(-4000)));
    child.stderr.on('data', (chunk: Buffer) => (text = (text + chunk.toString()).slice(-4000)));
    child.once('error', (error) => resolve({ code: -1, text: String(error) }));
    child.once('close', (code) => resolve({ code, text }));
  });
  const seconds = (performance.now() - t0) / 1000;
  if (outcome.code !== 0) return { note: `cdk8s synth failed (exit ${outcome.code}): ${outcome.text.trim().split('\n').slice(-3).join(' / ')}` };
  log(`cdk8s synth of 100 routes: ${seconds.toFixed(1)} s`);
  return { seconds, note: 'the whole `cdk8s synth` command, CLI start-up and the app under tsx included' };
}

export async function controllerAtScale(options: { repo: string; work: string; log: (line: string) => void; quick: boolean; routes?: number }): Promise<ControllerResult> {
  const { log, work, repo } = options;
  const routes = options.routes ?? (options.quick ? 200 : 1000);
  let plane: ControlPlane | undefined;
  let controller: Child | undefined;
  let client: KubeClient | undefined;
  let watcher: Informer<LiveRoute> | undefined;
  try {
    const built = await buildLlmroute(repo);
    if (!built.ok) return { done: false, reason: `could not compile the controller: ${built.reason}` };
    try {
      plane = await startControlPlane({ root: repo, controllerManager: false, apiServerProfiling: PROFILE, log: (line) => log(line) });
    } catch (error) {
      return { done: false, reason: `the API server harness did not start here: ${(error as Error).message.split('\n')[0]}` };
    }
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(plane.kubeconfigPath);
    client = await KubeClient.create(kc);
    await client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } } });
    // The harness's API server allocates Service IPs from 10.0.0.0/24: 253 Services, while every route environment
    // has one. A second ServiceCIDR (networking.k8s.io/v1) gives the 2,000 Services of 1,000 routes room.
    const cidrs = await client
      .request('POST', '/apis/networking.k8s.io/v1/servicecidrs', { body: { apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'bench-scale' }, spec: { cidrs: ['10.96.0.0/16'] } } })
      .then(() => 'added ServiceCIDR 10.96.0.0/16')
      .catch((error: unknown) => `could not add a ServiceCIDR (${(error as Error).message.split('\n')[0]}): at most 126 routes can get their Services`);
    const secret = (name: string, data: Record<string, string>) => client?.request('POST', `/api/v1/namespaces/${NAMESPACE}/secrets`, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: data } });
    await secret('provider-keys', { openai: 'sk-bench-openai-0123456789abcdef', anthropic: 'sk-ant-bench-0123456789abcdef' });
    await secret('client-tokens', { web: 'client-token-0123456789abcdef' });
    await secret('budget-redis', { url: 'redis://redis.bench-scale.svc:6379' });

    const entry = join(built.dir, 'bench', 'targets', 'controller.js');
    const profileDir = join(work, 'controller-profile');
    const started = await startChild({
      name: 'controller',
      command: process.execPath,
      args: [CONTROLLER_HEAP, ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), entry, plane.kubeconfigPath, NAMESPACE, ...(WORKERS ? [WORKERS] : [])],
      cwd: repo,
      logFile: join(work, 'controller.log'),
      announces: true,
      timeoutMs: 60_000,
    });
    controller = started.child;
    const statsUrl = started.announced.stats as string;
    await sleep(1000);
    const before = await stats(statsUrl);

    // 1. Every route at once.
    const routeType = resourceOf(API_VERSION, KIND);
    const list = resourcePath(routeType, NAMESPACE);
    const names = Array.from({ length: routes }, (_, i) => `route-${String(i).padStart(4, '0')}`);
    const readyNames = new Set<string>();
    watcher = startInformer<LiveRoute>({
      kc,
      path: list,
      list: () => client!.list<LiveRoute>(list) as Promise<k8s.KubernetesListObject<LiveRoute>>,
      onEvent: (type, object) => (type !== 'delete' && isReady(object) ? readyNames.add(object.metadata.name) : readyNames.delete(object.metadata.name)),
      resyncMs: 0,
      log: (message, fields) => log(`controller at scale: route watch: ${message} ${JSON.stringify(fields ?? {})}`),
    });
    await watcher.waitForSync();
    let peak = rssMB(controller.pid);
    const cpuBefore = cpuNow(controller.pid, plane);
    const apiServerProfile = join(work, 'kube-apiserver.pprof');
    const profiling = PROFILE ? profileApiServer(plane, API_SERVER_PROFILE_S, apiServerProfile).then(() => pprofTop(join(plane!.binDir, 'kube-apiserver'), apiServerProfile)) : undefined;
    const t0 = performance.now();
    await inParallel(names, 32, async (name) => {
      await client?.request('POST', list, { body: route(name) });
    });
    const applied = (performance.now() - t0) / 1000;
    log(`controller at scale: ${routes} LLMRoutes created in ${applied.toFixed(1)} s`);
    let ready = 0;
    const deadline = t0 + (options.quick ? 120_000 : 180_000);
    let lastProgress = performance.now();
    const progress: { s: number; ready: number; requests: number }[] = [];
    while (performance.now() < deadline) {
      peak = Math.max(peak, rssMB(controller.pid));
      ready = readyNames.size;
      if (ready === routes) break;
      if (performance.now() - lastProgress > 10_000) {
        lastProgress = performance.now();
        const now = await stats(statsUrl);
        progress.push({ s: round((lastProgress - t0) / 1000, 0), ready, requests: now.total - before.total });
        log(`controller at scale: ${ready}/${routes} Ready after ${((lastProgress - t0) / 1000).toFixed(0)} s; ${now.total - before.total} requests so far; RSS ${rssMB(controller.pid).toFixed(0)} MB`);
      }
      await sleep(500);
    }
    const waitedS = (performance.now() - t0) / 1000;
    await watcher.stop();
    const allReady = ready === routes;
    log(allReady ? `controller at scale: all ${routes} Ready after ${waitedS.toFixed(1)} s` : `controller at scale: only ${ready}/${routes} Ready after ${waitedS.toFixed(0)} s; the wait ends there`);
    const cpu = delta(cpuNow(controller.pid, plane), cpuBefore);
    const cpuNote = `CPU time from the first create until ${allReady ? 'all were Ready' : 'the wait ended'} (${waitedS.toFixed(0)} s, ${os.availableParallelism()} cores): ${['controller', 'kube-apiserver', 'etcd'].map((p) => `${p} ${((cpu[p] ?? 0) / 1000).toFixed(1)} s`).join(', ')}; the whole machine ${((cpu.machine ?? 0) / 1000).toFixed(1)} s (the benchmark itself and anything else running included).`;
    log(`controller at scale: ${cpuNote}`);
    if (profiling) log(`controller at scale: kube-apiserver CPU profile, the first ${API_SERVER_PROFILE_S} s:\n${await profiling.catch((error: unknown) => `failed: ${(error as Error).message}`)}`);
    // Once every route is Ready the controller still works through the events of the objects it created: wait until
    // it is quiet, so that the requests counted are all of them and the changes below do not queue behind a backlog.
    let settledS: number | undefined;
    if (allReady) {
      const settleFrom = performance.now();
      let last = (await stats(statsUrl)).total;
      let quietSeconds = 0;
      while (performance.now() - settleFrom < SETTLE_MAX_MS && quietSeconds < 2) {
        await sleep(1000);
        const now = (await stats(statsUrl)).total;
        quietSeconds = now - last <= 3 ? quietSeconds + 1 : 0;
        last = now;
        peak = Math.max(peak, rssMB(controller.pid));
      }
      if (quietSeconds >= 2) settledS = (performance.now() - t0) / 1000;
      log(settledS !== undefined ? `controller at scale: quiet ${settledS.toFixed(1)} s after the creates` : `controller at scale: still busy ${(SETTLE_MAX_MS / 1000).toFixed(0)} s after all were Ready`);
    }
    if (settledS === undefined) await sleep(3000);
    const after = await stats(statsUrl);
    const byVerb = delta(after.byVerb, before.byVerb);
    const apiRequests = after.total - before.total;
    const byResource = Object.entries(delta(after.byResource, before.byResource)).sort((a, b) => b[1] - a[1]);
    const resourceNote = `Requests per route by verb and resource: ${byResource.map(([key, n]) => `${key} ${round(n / routes, 2)}`).join(', ')}.`;
    log(`controller at scale: ${resourceNote}`);

    // 2. One changed route → its ConfigMap applied.
    const changes = allReady ? (options.quick ? 15 : 25) : 0;
    const latencies: number[] = [];
    let timeouts = 0;
    const configMaps = resourceByKind('ConfigMap');
    const changesUntil = performance.now() + 45_000;
    for (let i = 0; i < changes && performance.now() < changesUntil; i++) {
      const name = names[(i * 7919) % routes] as string;
      const attempts = 4 + (i % 5);
      const t1 = performance.now();
      await client.request('PATCH', resourcePath(routeType, NAMESPACE, name), { body: { spec: { retry: { maxAttempts: attempts } } }, contentType: 'application/merge-patch+json' });
      let applied = false;
      while (performance.now() - t1 < CHANGE_TIMEOUT_MS) {
        const cm = await client.request<{ data?: Record<string, string> }>('GET', resourcePath(configMaps, NAMESPACE, `${name}-production`));
        const text = cm.data?.['gateway.json'];
        if (text && (JSON.parse(text) as { retry?: { maxAttempts?: number } }).retry?.maxAttempts === attempts) {
          applied = true;
          break;
        }
        await sleep(5);
      }
      if (applied) latencies.push(performance.now() - t1);
      else timeouts += 1;
    }
    const change = summarize(latencies);
    if (changes) log(`controller at scale: change → ConfigMap p50 ${change.p50.toFixed(0)} ms, p99 ${change.p99.toFixed(0)} ms, ${timeouts} of ${latencies.length + timeouts} not applied within ${CHANGE_TIMEOUT_MS / 1000} s`);
    const rssAfter = rssMB(controller.pid);

    // 3. cdk8s synth.
    const synth = await synth100(repo, work, log);
    return {
      done: true,
      routes,
      environmentsPerRoute: 2,
      ...(allReady ? { allReadyS: round(waitedS, 1) } : {}),
      readyAtEnd: ready,
      waitedS: round(waitedS, 1),
      readyWithin60s: allReady && waitedS <= 60,
      ...(settledS !== undefined ? { quietAfterS: round(settledS, 1) } : {}),
      progress,
      controllerRssPeakMB: round(peak, 1),
      controllerRssAfterMB: round(rssAfter, 1),
      apiRequests,
      apiRequestsPerRoute: round(apiRequests / routes, 2),
      apiRequestsByVerb: byVerb,
      ...(changes ? { changeToConfigMapMs: { n: change.n, p50: round(change.p50, 1), p99: round(change.p99, 1), max: round(change.max, 1), timeouts, timeoutMs: CHANGE_TIMEOUT_MS } } : {}),
      ...(synth.seconds !== undefined ? { synth100RoutesS: round(synth.seconds, 1) } : {}),
      ...(synth.note ? { synthNote: synth.note } : {}),
      notes: [
        `The ${routes} routes were created 32 at a time (${applied.toFixed(1)} s to create them all); "Ready" means Ready=True for the route's current generation. kube-controller-manager was not started (no Deployment rollouts: the gateway pods are not part of this figure). Requests are counted inside the controller process, from the first create until it is quiet again (or 3 s after the end of the wait); a watch counts once. The controller runs with ${CONTROLLER_HEAP}, the heap Node.js gives it under the chart's 384 MiB memory limit. Service IPs: ${cidrs}.`,
        cpuNote,
        resourceNote,
        ...(allReady ? [] : ['The change → ConfigMap latency was not measured: the controller had not caught up with the routes when the wait ended.']),
        ...(allReady && settledS === undefined ? [`The controller was still sending requests ${SETTLE_MAX_MS / 1000} s after every route was Ready; the changes were measured anyway, against that backlog.`] : []),
      ],
    };
  } catch (error) {
    return { done: false, reason: `failed: ${(error as Error).message.split('\n')[0]}` };
  } finally {
    await watcher?.stop();
    await controller?.stop();
    if (PROFILE && controller) log(`controller at scale: the controller's CPU profile, the whole run:\n${await controllerProfile(join(work, 'controller-profile')).catch((error: unknown) => `failed: ${(error as Error).message}`)}`);
    client?.close();
    await plane?.stop();
  }
}
