/** The machine and the versions a run measured, for the results file. */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LITELLM_VERSION, PORTKEY_HONO_NODE_SERVER, PORTKEY_VERSION } from './install.js';

const exec = promisify(execFile);

async function text(command: string, args: string[], cwd?: string): Promise<string> {
  try {
    return (await exec(command, args, { cwd, timeout: 30_000 })).stdout.trim();
  } catch {
    return '';
  }
}

export async function machineInfo(): Promise<Record<string, string | number>> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const release = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return {
    cpu: model,
    cores: os.availableParallelism(),
    memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    os: /PRETTY_NAME="?([^"\n]+)"?/.exec(release)?.[1] ?? os.type(),
    kernel: os.release(),
    arch: os.arch(),
  };
}

export async function versionsInfo(repo: string) {
  const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string };
  const undici = JSON.parse(await readFile(join(repo, 'node_modules', 'undici', 'package.json'), 'utf8')) as { version: string };
  const commit = await text('git', ['rev-parse', '--short=12', 'HEAD'], repo);
  const dirty = (await text('git', ['status', '--porcelain', '--', 'src'], repo)).length > 0;
  return {
    node: process.version,
    llmroute: { version: pkg.version, commit: commit || 'unknown', dirty },
    undici: undici.version,
    portkey: PORTKEY_VERSION,
    portkeyHonoNodeServer: PORTKEY_HONO_NODE_SERVER,
    litellm: LITELLM_VERSION,
    python: (await text('python3', ['--version'])).replace(/^Python /, ''),
  };
}
