/**
 * Installing the competing gateways OUTSIDE the repository, in a cache directory, idempotently: Portkey's gateway
 * from npm into `<cache>/portkey`, LiteLLM's proxy from PyPI into a virtual environment `<cache>/litellm-venv`.
 * Versions are pinned so that a run is reproducible; a failed install is reported with its reason, never faked.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const PORTKEY_VERSION = process.env.BENCH_PORTKEY_VERSION ?? '1.15.2';
/**
 * Portkey depends on `@hono/node-server@^1.3.3`, which today resolves to a 1.19 release whose lightweight Response
 * keeps the upstream fetch Response's immutable Headers: every streaming request through Portkey then fails with
 * `TypeError: immutable` (Portkey appends its own headers to them) and answers 500. Releases up to 1.14.0 copy the
 * headers, so the benchmark pins that one with an npm override.
 */
export const PORTKEY_HONO_NODE_SERVER = '1.14.0';
export const LITELLM_VERSION = process.env.BENCH_LITELLM_VERSION ?? '1.106.2';

export const CACHE_DIR = process.env.LLMROUTE_BENCH_CACHE ?? join(homedir(), '.cache', 'llmroute', 'bench');

export type Installed = { ok: true; version: string; entry: string; note?: string } | { ok: false; reason: string };

interface RunResult {
  code: number | null;
  output: string;
}

function run(command: string, args: string[], options: { cwd?: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<RunResult> {
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const add = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-20_000);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    const timer = setTimeout(() => {
      output += `\n(timed out after ${options.timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: -1, output: `${output}\n${String(error)}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const lastLines = (text: string, n = 8) => text.trim().split('\n').slice(-n).join('\n');

/** `@portkey-ai/gateway` in `<cache>/portkey`; its entry is `build/start-server.js`. */
export async function installPortkey(log: (line: string) => void): Promise<Installed> {
  const prefix = join(CACHE_DIR, 'portkey');
  const packageDir = join(prefix, 'node_modules', '@portkey-ai', 'gateway');
  const entry = join(packageDir, 'build', 'start-server.js');
  const versionOf = (dir: string) => {
    try {
      return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return undefined;
    }
  };
  const honoVersions = () => [join(prefix, 'node_modules', '@hono', 'node-server'), join(packageDir, 'node_modules', '@hono', 'node-server')].map(versionOf).filter((v) => v !== undefined);
  const current = () => versionOf(packageDir) === PORTKEY_VERSION && existsSync(entry) && honoVersions().every((v) => v === PORTKEY_HONO_NODE_SERVER);
  if (!current()) {
    log(`installing @portkey-ai/gateway@${PORTKEY_VERSION} (with @hono/node-server@${PORTKEY_HONO_NODE_SERVER}) into ${prefix}`);
    await rm(join(prefix, 'node_modules'), { recursive: true, force: true });
    await rm(join(prefix, 'package-lock.json'), { force: true });
    await mkdir(prefix, { recursive: true });
    const manifest = { private: true, dependencies: { '@portkey-ai/gateway': PORTKEY_VERSION }, overrides: { '@hono/node-server': PORTKEY_HONO_NODE_SERVER } };
    await writeFile(join(prefix, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const result = await run('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund'], { timeoutMs: 300_000 });
    if (result.code !== 0) return { ok: false, reason: `npm install @portkey-ai/gateway@${PORTKEY_VERSION} failed (exit ${result.code}): ${lastLines(result.output)}` };
  }
  const version = versionOf(packageDir);
  if (!version || !existsSync(entry)) return { ok: false, reason: `@portkey-ai/gateway installed but ${entry} is missing` };
  return { ok: true, version, entry, note: `@hono/node-server ${honoVersions().join(', ')}` };
}

/** `litellm[proxy]` in the virtual environment `<cache>/litellm-venv`; its entry is the venv's `litellm` script. */
export async function installLitellm(log: (line: string) => void): Promise<Installed> {
  const venv = join(CACHE_DIR, 'litellm-venv');
  const python = join(venv, 'bin', 'python');
  const entry = join(venv, 'bin', 'litellm');
  const installedVersion = async () => {
    if (!existsSync(python) || !existsSync(entry)) return undefined;
    const result = await run(python, ['-c', 'import importlib.metadata as m; print(m.version("litellm"))'], { timeoutMs: 60_000 });
    return result.code === 0 ? result.output.trim().split('\n').pop() : undefined;
  };
  if ((await installedVersion()) !== LITELLM_VERSION) {
    log(`installing litellm[proxy]==${LITELLM_VERSION} into ${venv} (a few minutes the first time)`);
    await mkdir(CACHE_DIR, { recursive: true });
    if (!existsSync(python)) {
      const created = await run('python3', ['-m', 'venv', venv], { timeoutMs: 120_000 });
      if (created.code !== 0) return { ok: false, reason: `python3 -m venv ${venv} failed (exit ${created.code}): ${lastLines(created.output)}` };
    }
    const result = await run(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `litellm[proxy]==${LITELLM_VERSION}`], { timeoutMs: 900_000 });
    if (result.code !== 0) return { ok: false, reason: `pip install litellm[proxy]==${LITELLM_VERSION} failed (exit ${result.code}): ${lastLines(result.output)}` };
  }
  const version = await installedVersion();
  if (!version) return { ok: false, reason: `litellm installed into ${venv} but not importable` };
  const pythonVersion = await run(python, ['--version'], { timeoutMs: 30_000 });
  return { ok: true, version, entry, note: pythonVersion.output.trim() };
}
