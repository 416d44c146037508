/**
 * Child processes of the benchmark: starting them with their output in log files, waiting until they serve, reading
 * their resident memory and CPU time from /proc (summed over the process tree, since some targets fork workers), and
 * stopping exactly the processes that were started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Child {
  name: string;
  process: ChildProcess;
  pid: number;
  /** File the child's stdout and stderr go to (stdout only after its first line when `announces`). */
  logFile: string;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logFile: string;
  /** The child prints one JSON line on stdout once ready; resolve with it. Otherwise stdout goes to the log. */
  announces?: boolean;
  timeoutMs?: number;
}

/** A free loopback port (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function stopper(child: ChildProcess, name: string): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(8000).then(() => false)]);
    if (!done) {
      process.stderr.write(`bench: ${name} (pid ${child.pid}) ignored SIGTERM; killing it\n`);
      child.kill('SIGKILL');
      await exited;
    }
  };
}

/** Starts a child; with `announces`, resolves with its first stdout line parsed as JSON. */
export async function startChild(options: SpawnOptions): Promise<{ child: Child; announced: Record<string, string> }> {
  const log = openSync(options.logFile, 'a');
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', options.announces ? 'pipe' : log, log],
  });
  closeSync(log);
  if (child.pid === undefined) {
    await new Promise((resolve) => child.once('error', resolve));
    throw new Error(`${options.name}: could not start ${options.command}`);
  }
  const handle: Child = { name: options.name, process: child, pid: child.pid, logFile: options.logFile, stop: stopper(child, options.name) };
  if (!options.announces) return { child: handle, announced: {} };
  const stdout = child.stdout;
  if (!stdout) throw new Error(`${options.name}: no stdout`);
  const lines = createInterface({ input: stdout });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`${options.name} exited (${code ?? signal}) before it was ready:\n${tail(options.logFile)}`))),
  );
  const timeoutMs = options.timeoutMs ?? 60_000;
  const first = new Promise<string>((resolve) => lines.once('line', resolve));
  const timer = sleep(timeoutMs).then(() => {
    throw new Error(`${options.name} announced nothing within ${timeoutMs} ms:\n${tail(options.logFile)}`);
  });
  try {
    const line = await Promise.race([first, exited, timer]);
    // Keep draining stdout so that a chatty child never blocks on a full pipe.
    stdout.resume();
    return { child: handle, announced: JSON.parse(line) as Record<string, string> };
  } catch (error) {
    await handle.stop();
    throw error;
  }
}

/** Polls `url` until it answers with a status below 500 (any answer when `anyStatus`). */
export async function waitForHttp(url: string, child: Child, timeoutMs: number, headers: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null || child.process.signalCode !== null) throw new Error(`${child.name} exited (${child.process.exitCode ?? child.process.signalCode}):\n${tail(child.logFile)}`);
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.status < 500) return;
      last = `status ${response.status}`;
    } catch (error) {
      last = String((error as Error).cause ?? error);
    }
    await sleep(200);
  }
  throw new Error(`${child.name} did not answer ${url} within ${timeoutMs} ms (${last}):\n${tail(child.logFile)}`);
}

/** The pid and every descendant of it, from /proc. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const next = queue.shift() as number;
    out.push(next);
    queue.push(...(parents.get(next) ?? []));
  }
  return out;
}

/** Resident memory (VmRSS) of a process tree, in MB. */
export function rssMB(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (match) kb += Number(match[1]);
    } catch {
      // Gone.
    }
  }
  return kb / 1024;
}

const TICKS_PER_SECOND = 100;

/** User plus system CPU time of one process, in ms (0 once it is gone). */
export function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** User plus system CPU time of a process tree, in ms (live processes only). */
export function cpuMs(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + cpuMsOf(p), 0);
}

/** CPU time the whole machine spent busy (all cores, everything but idle and iowait), in ms. */
export function machineBusyMs(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return ((total - idle) * 1000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}
