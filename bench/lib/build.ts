/**
 * llmroute as production runs it: `tsc` output, plain `node`, no loader and no source maps (the Dockerfile runs
 * `npm run build` output). Compiled at the start of every run, since src/ changes, into the cache directory, never
 * into the repository; the build directory gets `"type": "module"` and a link to the repository's node_modules.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CACHE_DIR } from './install.js';

export type Built = { ok: true; entry: string; dir: string } | { ok: false; reason: string };

export async function buildLlmroute(repo: string): Promise<Built> {
  const dir = join(CACHE_DIR, 'llmroute-build');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  const output = await new Promise<{ code: number | null; text: string }>((resolve) => {
    let text = '';
    const child = spawn(process.execPath, [tsc, '-p', join(repo, 'bench', 'tsconfig.gateway.json'), '--outDir', dir, '--noCheck'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('close', (code) => resolve({ code, text }));
  });
  const entry = join(dir, 'bench', 'targets', 'llmroute.js');
  if (output.code !== 0 || !existsSync(entry)) return { ok: false, reason: `tsc failed (exit ${output.code}): ${output.text.trim().split('\n').slice(-5).join(' / ')}` };
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(repo, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return { ok: true, entry, dir };
}
