/**
 * A CPU profile of llmroute's hot path: the full configuration in a fresh process under `node --cpu-prof`, driven at
 * a fixed rate, then the profile summarised: the functions with the most self time, llmroute's own functions by
 * inclusive time, and self time by area (llmroute's files, undici, prom-client, Node internals, GC).
 */
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CACHE_DIR } from './install.js';
import { openLoop, pool } from './load.js';
import { cpuMs } from './proc.js';
import type { ProfileEntry, ProfileResult } from './results.js';
import { round, summarize } from './stats.js';
import { llmrouteTarget, startLlmroute } from './targets.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const IDLE = new Set(['(idle)', '(program)']);
/** llmroute's own code, compiled (the build directory) or not. */
const LLMROUTE_FILE = /\/src\/.+\.[jt]s$/;
/** Where a request is being handled: the window of samples analysed starts and ends with these. */
const HANDLER = /\/src\/gateway\/(chat|server)\.[jt]s$/;

export function areaOf(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (!url) return name.startsWith('(') ? name : 'native / V8';
  const src = /\/src\/(.+?\.[jt]s)$/.exec(url);
  if (src && !url.includes('node_modules')) return `llmroute ${src[1]}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  if (url.startsWith('node:')) return `node ${url.slice(5).split('/').slice(0, 2).join('/')}`;
  return url.replace(/^file:\/\//, '');
}

const where = (frame: CallFrame) => {
  const url = frame.url.replace(/^file:\/\//, '');
  const modules = url.lastIndexOf('/node_modules/');
  const src = url.lastIndexOf('/src/');
  const file = modules >= 0 ? url.slice(modules + 1) : src >= 0 ? url.slice(src + 1) : url;
  return file ? `${file}:${frame.lineNumber + 1}` : '';
};

/** Self and inclusive time per function from a .cpuprofile. */
export function analyse(profile: CpuProfile, top = 20): Pick<ProfileResult, 'busyMs' | 'topSelf' | 'topLlmrouteTotal' | 'byArea'> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  // Only the window in which requests were handled: startup (module loading) and shutdown are not the hot path.
  const inHandler = (id: number) => {
    for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) if (HANDLER.test((byId.get(cursor) as ProfileNode).callFrame.url)) return true;
    return false;
  };
  let first = profile.samples.findIndex(inHandler);
  let last = profile.samples.length - 1;
  while (last > 0 && !inHandler(profile.samples[last] as number)) last -= 1;
  if (first < 0) {
    first = 0;
    last = profile.samples.length - 1;
  }
  // Time per node from the sample deltas (more exact than hitCount × interval).
  const selfUs = new Map<number, number>();
  for (let i = first; i <= last; i++) {
    const id = profile.samples[i] as number;
    const delta = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
  }
  let busyUs = 0;
  const selfByFn = new Map<string, { name: string; where: string; us: number }>();
  const totalByFn = new Map<string, { key: string; name: string; where: string; us: number }>();
  const byArea = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node || IDLE.has(node.callFrame.functionName)) continue;
    busyUs += us;
    const frame = node.callFrame;
    const key = `${frame.functionName}@${frame.url}:${frame.lineNumber}`;
    const entry = selfByFn.get(key) ?? { name: frame.functionName || '(anonymous)', where: where(frame), us: 0 };
    entry.us += us;
    selfByFn.set(key, entry);
    const area = areaOf(frame.url, frame.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    // Inclusive time of llmroute functions: once per function per stack.
    const seen = new Set<string>();
    for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) {
      const f = (byId.get(cursor) as ProfileNode).callFrame;
      if (!LLMROUTE_FILE.test(f.url) || f.url.includes('/node_modules/')) continue;
      const k = `${f.functionName}@${f.url}:${f.lineNumber}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const t = totalByFn.get(k) ?? { key: k, name: f.functionName || '(anonymous)', where: where(f), us: 0 };
      t.us += us;
      totalByFn.set(k, t);
    }
  }
  const pct = (us: number) => round((us / Math.max(1, busyUs)) * 100, 1);
  const entry = (e: { name: string; where: string; us: number }): ProfileEntry => ({ name: e.name, where: e.where, selfMs: round(e.us / 1000, 1), selfPct: pct(e.us) });
  return {
    busyMs: round(busyUs / 1000, 0),
    topSelf: [...selfByFn.values()].sort((a, b) => b.us - a.us).slice(0, top).map(entry),
    topLlmrouteTotal: [...totalByFn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => {
        const self = selfByFn.get(e.key)?.us ?? 0;
        return { name: e.name, where: e.where, selfMs: round(self / 1000, 1), selfPct: pct(self), totalMs: round(e.us / 1000, 1), totalPct: pct(e.us) };
      }),
    byArea: [...byArea.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([area, us]) => ({ area, selfMs: round(us / 1000, 1), selfPct: pct(us) })),
  };
}

export async function profileLlmroute(options: { repo: string; work: string; fake: string; llmrouteEntry?: string; rate: number; durationMs: number; log: (line: string) => void; version: string; reason: 'missed' | 'asked' }): Promise<ProfileResult> {
  const dir = join(options.work, 'cpu-profile');
  const base = { reason: options.reason, rate: options.rate, durationMs: options.durationMs, requests: 0, p99Ms: 0, busyMs: 0, cpuUsPerRequest: 0, topSelf: [], topLlmrouteTotal: [], byArea: [] };
  try {
    const started = await startLlmroute(
      'full',
      options.fake,
      { repo: options.repo, work: options.work, log: options.log, competitors: false, llmrouteNodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '200'], ...(options.llmrouteEntry ? { llmrouteEntry: options.llmrouteEntry } : {}) },
      '-profiled',
    );
    const target = llmrouteTarget('full', started, options.version);
    const endpoint = target.endpoint as NonNullable<typeof target.endpoint>;
    const dispatcher = pool(endpoint);
    const cpu0 = cpuMs(started.child.pid);
    const step = await openLoop(dispatcher, endpoint, options.rate, options.durationMs, 500, 2000);
    const cpu = cpuMs(started.child.pid) - cpu0;
    await dispatcher.destroy();
    await started.child.stop();
    const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
    if (!files.length) throw new Error(`no .cpuprofile written in ${dir}`);
    // Kept outside the work directory (which is removed), for a closer look in a profiler.
    await mkdir(join(CACHE_DIR, 'profiles'), { recursive: true });
    const file = join(CACHE_DIR, 'profiles', `llmroute-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
    await copyFile(join(dir, files[0] as string), file);
    const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
    const analysed = analyse(profile);
    const sent = Math.round((options.rate * (options.durationMs + 500)) / 1000);
    return { ...base, ...analysed, requests: step.completed, p99Ms: round(summarize(step.latencies).p99), cpuUsPerRequest: round((cpu * 1000) / sent, 0), file };
  } catch (error) {
    return { ...base, error: (error as Error).message };
  }
}
